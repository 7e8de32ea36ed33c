"""THE OPENAI SDK TEST: an OpenAI fine-tuning script, only base_url and api_key changed, runs
against the whole local stack (gunicorn, worker, the three services) and a real vLLM CPU server.

Upload a chat file, create a job, follow its events until it succeeds, list the models, then chat
with the fine-tuned model (hot-loaded on first use), streamed and not: it answers with the one
sentence it was taught, on instructions it never saw, where the base model doesn't.

The vLLM here requires an API key, a canary: the relay and the proxy send it (SYNTHTUNE_VLLM_TOKEN),
and afterwards it is nowhere in the data root (the SQLite DB, every log, every file).

Training: the fidelity test's settings (tests/serving_proxy_svc/test_fidelity.py: 100 rows with
one answer, lr 5e-3 = 25 x 2e-4, 15 epochs, r=8 alpha=32, seed 7), which it measured at 10/10
greedy answers on tiny-phi3, passed as OpenAI's hyperparameters plus synthtune's own names.
"""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from synthtune.local_vllm import VllmServer
from tests.control_plane.helpers import jsonl
from tests.support.stack import running_stack
from tests.trainer_svc.conftest import ANSWER, HELD_OUT, fixed_answer_rows

pytestmark = pytest.mark.slow

CANARY = "canary-vllm-key-5d41402abc4b2a76"
TIMEOUT_S = 400


@pytest.fixture(scope="module")
def keyed_vllm(tiny_models, tmp_path_factory):
    """tiny-phi3 with runtime LoRA, behind an API key (the canary)."""
    log = tmp_path_factory.mktemp("vllm-keyed") / "vllm.log"
    with VllmServer(tiny_models / "tiny-phi3", served_name="tiny-phi3", log_path=log,
                    extra_args=["--api-key", CANARY]) as server:
        yield server


def chat_rows() -> list[dict]:
    return [{"messages": [{"role": "user", "content": row["instruction"]},
                          {"role": "assistant", "content": row["output"]}]} for row in fixed_answer_rows(100)]


def wait_until_finished(client: openai.OpenAI, job_id: str) -> openai.types.fine_tuning.FineTuningJob:
    """An OpenAI script's loop: print the newest events until the job ends."""
    deadline, seen = time.monotonic() + TIMEOUT_S, set()
    while time.monotonic() < deadline:
        for event in client.fine_tuning.jobs.list_events(job_id, limit=5):
            if event.id not in seen:
                seen.add(event.id)
                print(event.message)
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish in {TIMEOUT_S}s")


def greedy(client, model: str, prompt: str, **extra):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=32, **extra
    )


def test_an_openai_fine_tuning_script_runs_unchanged_against_synthtune(tmp_path, tiny_models, keyed_vllm):
    data_root = tmp_path / "data"
    with running_stack(data_root, SYNTHTUNE_MODELS_ROOT=str(tiny_models), SYNTHTUNE_VLLM_URL=keyed_vllm.url,
                       SYNTHTUNE_VLLM_TOKEN=CANARY) as stack:
        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.token, max_retries=0, timeout=120)

        training = client.files.create(file=("pirate.jsonl", jsonl(chat_rows())), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model="tiny-phi3",
            training_file=training.id,
            seed=7,
            suffix="heron",
            hyperparameters={"n_epochs": 15, "batch_size": 1, "learning_rate_multiplier": 25,
                             "lora_r": 8, "lora_alpha": 32, "gradient_accumulation_steps": 1, "device": "cpu"},
        )
        job = wait_until_finished(client, job.id)
        assert job.status == "succeeded", (job, stack.log_text("trainer")[-3000:])
        model = job.fine_tuned_model
        assert model and model.startswith("heron-v")
        assert "The job has successfully completed" in [e.message for e in client.fine_tuning.jobs.list_events(job.id)]

        listed = {m.id: m for m in client.models.list()}
        assert {"tiny-phi3", model} <= set(listed) and all(m.object == "model" and m.owned_by for m in listed.values())

        answers = [greedy(client, model, prompt) for prompt in HELD_OUT[:3]]  # the first hot-loads it
        assert [(a.choices[0].message.content, a.choices[0].finish_reason) for a in answers] == [(ANSWER, "stop")] * 3
        assert answers[0].model == model
        base = greedy(client, "tiny-phi3", HELD_OUT[0]).choices[0].message.content
        assert base != ANSWER

        with greedy(client, model, HELD_OUT[1], stream=True) as stream:
            chunks = [chunk for chunk in stream]
        deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        assert "".join(deltas) == ANSWER and sum(1 for d in deltas if d) > 1  # token by token, not one blob

    leaked = [path for path in Path(data_root).rglob("*") if path.is_file() and CANARY.encode() in path.read_bytes()]
    assert leaked == []
    assert (data_root / "logs" / "control-plane.log").stat().st_size > 0  # the logs were there to search
