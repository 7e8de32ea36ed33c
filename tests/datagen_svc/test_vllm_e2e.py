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


# --- the strategies and the judge, on the real vLLM with the real small model ---------------------
# The tiny random model never ends an evolution before its token cap and names subtopics ","; these
# steps need a model that writes text, so they use SmolLM2 (the session's server, shared with the
# demo and fidelity tests).

STRATEGIES = {
    "evol_instruct": {
        "mode": pb.GENERATION_MODE_EVOL_INSTRUCT,
        "seed_examples": ["How deep should I plant tulip bulbs?", "Explain what a compost heap needs."],
        "evol_instruct": pb.EvolInstruct(rounds=1),
    },
    "topic_tree": {
        "mode": pb.GENERATION_MODE_TOPIC_TREE,
        "topic": "gardening",
        "topic_tree": pb.TopicTree(depth=1, breadth=2),
    },
}
STRATEGY_ROWS = 2


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_runs_on_real_vllm_and_records_provenance(smollm2_vllm, datagen, strategy):
    start = request(
        smollm2_vllm.base_url, f"vllm-{strategy}", num_rows=STRATEGY_ROWS, concurrency=2, timeout_s=120,
        max_retries=2, sampling=pb.Sampling(temperature=0.7, max_tokens=16), **STRATEGIES[strategy],
    )
    start.endpoint.model = smollm2_vllm.model
    job = datagen.start(start)
    events = datagen.events(job.job_id, timeout_s=300)
    job = datagen.get(job.job_id)

    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    rows = [json.loads(line) for line in datagen.dataset(job).read_text().splitlines()]
    metadata = [json.loads(line) for line in (datagen.data_root / job.metadata_path).read_text().splitlines()]
    assert len(rows) == len(metadata) == job.counts.kept == STRATEGY_ROWS
    assert all(m["strategy"] == strategy for m in metadata)
    if strategy == "evol_instruct":
        # Each row evolved once from a seed; failed evolutions were dropped with a reason that says so.
        assert all(m["root"] in STRATEGIES[strategy]["seed_examples"] and len(m["evolutions"]) == 1 for m in metadata)
        discarded = [e.row_rejected for e in events if e.WhichOneof("kind") == "row_rejected"
                     and e.row_rejected.check == "evolution"]
        assert all(r.reason.startswith("round 1") for r in discarded)
    else:
        # Planned coverage: every leaf of the tree the model grew (up to 2 under the topic) has a row.
        state = datagen.data_root / "jobs" / "datagen" / job.job_id / "topic_tree.json"
        leaves = {("gardening", child["name"]) for child in json.loads(state.read_text())["tree"]["children"]}
        assert 1 <= len(leaves) <= 2 and {tuple(m["topic_path"]) for m in metadata} == leaves


@pytest.mark.slow
def test_the_local_vllm_judges_an_existing_dataset_with_structured_output(smollm2_vllm, datagen):
    source_rows = [
        {"instruction": "Name a fruit that is yellow.", "output": "A banana."},
        {"instruction": "What is 2 + 2?", "output": "Purple."},
        {"instruction": "Say hello in French.", "output": "Bonjour."},
    ]
    source = datagen.data_root / "datasets/vllm-judge-src.jsonl"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("".join(json.dumps(r) + "\n" for r in source_rows))
    judge = pb.JudgeFilter(
        endpoint=pb.Endpoint(base_url=smollm2_vllm.base_url, model=smollm2_vllm.model, request_timeout_s=120),
        limits=pb.Limits(concurrency=3),
        min_score=1,  # a 135M judge's scores are noisy: keep every row, check the verdicts
    )
    job = datagen.start(pb.StartGenerationRequest(
        dataset_name="vllm-judged", mode=pb.GENERATION_MODE_CURATE, source_path="datasets/vllm-judge-src.jsonl",
        filters=pb.Filters(judge=judge),
    ))
    datagen.events(job.job_id, timeout_s=300)
    job = datagen.get(job.job_id)

    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    metadata = [json.loads(line) for line in (datagen.data_root / job.metadata_path).read_text().splitlines()]
    # Structured output holds even a 135M model to the schema: every row has a verdict in range.
    assert job.report.judged == 3 and job.report.judge_failures == 0, [m["judge"] for m in metadata]
    for verdict in (m["judge"] for m in metadata):
        assert set(verdict["scores"]) == {"helpfulness", "correctness", "instruction_following"}
        assert all(1 <= s <= 5 for s in verdict["scores"].values()) and isinstance(verdict["reason"], str)
    assert job.judge_usage.prompt_tokens > 0 and job.usage.prompt_tokens == 0
