"""End to end against a real vLLM CPU server serving the tiny (random) model.

Outputs are gibberish and some may be empty (dropped, which is fine): the
assertions are about the bookkeeping agreeing with the file, not the content.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from synthtune import records
from synthtune.datagen.v1 import datagen_pb2 as pb
from tests.datagen_svc.conftest import request

ROWS = 8
MODES = {
    "fixed": {"mode": pb.GENERATION_MODE_FIXED, "prompt_template": "Write a haiku about rivers."},
    "self_instruct": {
        "mode": pb.GENERATION_MODE_SELF_INSTRUCT,
        "topic": "gardening",
        "seed_examples": ["How deep should I plant tulip bulbs?"],
    },
    "from_instructions": {
        "mode": pb.GENERATION_MODE_FROM_INSTRUCTIONS,
        "instructions": [f"Describe the number {i} in one line." for i in range(ROWS)],
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_generates_a_consistent_dataset_from_real_vllm(vllm_server, datagen, mode):
    fields = MODES[mode]
    start = request(
        vllm_server.base_url,
        f"vllm-{mode}",
        num_rows=ROWS,
        concurrency=2,
        timeout_s=120,
        max_retries=2,
        system_prompt="You are terse.",
        sampling=pb.Sampling(temperature=1.0, max_tokens=24),
        **fields,
    )
    start.endpoint.model = vllm_server.model
    job = datagen.start(start)
    events = datagen.events(job.job_id, timeout_s=300)
    job = datagen.get(job.job_id)

    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    data = datagen.dataset(job).read_bytes()
    assert hashlib.sha256(data).hexdigest() == job.sha256 and len(data) == job.size_bytes
    lines = data.decode().splitlines()
    report = records.require_valid(lines)
    assert report.format == "instruction" and report.rows == job.counts.kept
    rows = [json.loads(line) for line in lines]
    assert all(r["system"] == "You are terse." and r["output"].strip() for r in rows)

    rejected = [e.row_rejected for e in events if e.WhichOneof("kind") == "row_rejected"]
    assert len(rejected) == job.counts.dropped + job.counts.failed
    assert job.counts.failed == 0  # a healthy server: nothing should need to give up
    if mode == "from_instructions":
        # one row per instruction at most; empty answers can't be replaced from a fixed list
        assert job.counts.kept + job.counts.dropped == ROWS
        assert {r["instruction"] for r in rows} <= set(fields["instructions"])
    else:
        assert job.counts.kept == ROWS
    if mode == "self_instruct":
        assert len({r["instruction"] for r in rows}) == ROWS
    assert job.usage.prompt_tokens > 0 and job.usage.completion_tokens > 0
    written = [e.dataset_written for e in events if e.WhichOneof("kind") == "dataset_written"]
    assert written and written[-1].sha256 == job.sha256 and written[-1].counts.kept == job.counts.kept
