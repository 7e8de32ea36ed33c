"""Fidelity on a real model: SmolLM2-135M-Instruct, fine-tuned briefly, served by vLLM CPU.

1. The trainer SERVICE fine-tunes SmolLM2 on tests/data/smollm2-pirate.jsonl: 32 rows of
   the demo's context distillation (plain everyday questions, answers of SmolLM2 itself
   asked to talk like a pirate, each starting with "Arr!"; recorded from one demo run, so
   the test is deterministic and needs no teacher). 4 epochs, about a minute on 2 cores.
2. The serving proxy hot-loads the adapter into a real vLLM serving SmolLM2.
3. Parity: for each held-out question, vLLM's greedy tokens with the adapter equal
   transformers' greedy tokens with the same PEFT model, token for token, and both stop
   on the end token. This is what catches a template, stop-token, target-module or dtype
   mismatch on a real architecture (ChatML without generation markers, tied embeddings).
4. Learning: through the proxy, the adapter answers the held-out questions in the style,
   the base model does not.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from synthtune.demo_style import follows_style
from synthtune.grpc_client import open_channel
from synthtune.prompt_format import serving_request
from synthtune.serving.v1 import serving_pb2 as spb
from synthtune.serving.v1 import serving_pb2_grpc
from synthtune.trainer.v1 import trainer_pb2 as tpb
from synthtune.trainer.v1 import trainer_pb2_grpc
from tests.support.procs import REPO, START_RUN_TIMEOUT_S, TEST_GRPC_TOKEN, start_service
from tests.trainer_svc.conftest import wait_for_run

# vllm: it asks for the session's smollm2_vllm by request.getfixturevalue, which the marking in
# tests/conftest.py can't see; on the other side it would boot a second one (it once timed out there).
pytestmark = [pytest.mark.slow, pytest.mark.vllm]

DATASET = REPO / "tests" / "data" / "smollm2-pirate.jsonl"
# Questions of synthtune.demo_style.QUESTIONS that are not in the training file.
HELD_OUT = ["Why do birds sing?", "What is a telescope?", "How do I plant a tree?", "What is a dinosaur?"]
HYPERPARAMETERS = tpb.Hyperparameters(learning_rate=1e-3, epochs=4, max_length=256, eval_fraction=0.0, seed=7,
                                      device="cpu")
MAX_TOKENS = 96
TRAIN_TIMEOUT_S = 420


@dataclass
class Served:
    proxy: serving_pb2_grpc.ServingProxyServiceStub
    adapter: str
    adapter_dir: Path
    vllm_url: str
    base_model: str
    model_dir: Path


@pytest.fixture(scope="module")
def served(request, smollm2, tmp_path_factory):
    data_root = tmp_path_factory.mktemp("fidelity-smollm2") / "data"
    (data_root / "datasets").mkdir(parents=True)
    shutil.copy(DATASET, data_root / "datasets" / DATASET.name)
    logs = data_root.parent
    trainer = start_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN", log_path=logs / "trainer.log",
                            env={"SYNTHTUNE_DATA_ROOT": str(data_root),
                                 "SYNTHTUNE_MODELS_ROOT": str(smollm2.parent)})
    proxy = None
    channel = None
    try:
        trainer_stub = trainer_pb2_grpc.TrainerServiceStub(open_channel(trainer.address, token=TEST_GRPC_TOKEN))
        run = trainer_stub.StartRun(tpb.StartRunRequest(
            base_model=smollm2.name, datasets=[f"datasets/{DATASET.name}"], hyperparameters=HYPERPARAMETERS,
            adapter_name=f"pirate-{uuid.uuid4().hex[:6]}"), timeout=START_RUN_TIMEOUT_S).run
        vllm = request.getfixturevalue("smollm2_vllm")  # boots while the trainer's child trains
        run = wait_for_run(trainer_stub, run.run_id, timeout_s=TRAIN_TIMEOUT_S)
        assert run.state == tpb.RUN_STATE_SUCCEEDED, (tpb.RunState.Name(run.state), run.error,
                                                      trainer.log_text()[-3000:])
        trainer.stop()
        proxy = start_service("serving_proxy_svc", listen_var="SYNTHTUNE_SERVING_PROXY_LISTEN",
                              log_path=logs / "proxy.log",
                              env={"SYNTHTUNE_DATA_ROOT": str(data_root), "SYNTHTUNE_VLLM_URL": vllm.url})
        channel = open_channel(proxy.address, token=TEST_GRPC_TOKEN)
        stub = serving_pb2_grpc.ServingProxyServiceStub(channel)
        name = run.adapter_path.rsplit("/", 1)[-1]
        loaded = stub.LoadAdapter(spb.LoadAdapterRequest(adapter_name=name, targets=[vllm.url]), timeout=120)
        assert [r.ok for r in loaded.replicas] == [True], loaded
        yield Served(stub, name, data_root / run.adapter_path, vllm.url, vllm.model, smollm2)
        stub.UnloadAdapter(spb.UnloadAdapterRequest(served_name=name, targets=[vllm.url]), timeout=60)
    finally:
        if channel is not None:
            channel.close()
        if proxy is not None:
            proxy.stop()
        trainer.stop()


def _vllm_greedy(url: str, model: str, prompt: str) -> tuple[list[int], str]:
    """vLLM's greedy token ids and finish reason, for `prompt` in the chat format the proxy sends."""
    path, body = serving_request(prompt, "chat")
    reply = httpx.post(f"{url}{path}", timeout=120, json={
        **body, "model": model, "max_tokens": MAX_TOKENS, "temperature": 0.0,
        "logprobs": True, "return_tokens_as_token_ids": True,
    })
    reply.raise_for_status()
    choice = reply.json()["choices"][0]
    return [int(t["token"].removeprefix("token_id:")) for t in choice["logprobs"]["content"]], choice["finish_reason"]


def _transformers_greedy(served: Served, prompts: list[str]) -> list[list[int]]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(served.model_dir)
    base = AutoModelForCausalLM.from_pretrained(served.model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, served.adapter_dir).eval()
    outputs = []
    for prompt in prompts:
        _, body = serving_request(prompt, "chat")
        inputs = tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, return_dict=True,
                                               return_tensors="pt")
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)
        outputs.append(generated[0, inputs["input_ids"].shape[1]:].tolist())
    return outputs


def test_vllm_serves_exactly_what_transformers_generates_and_both_stop(served):
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(served.model_dir).eos_token_id
    from_vllm = [_vllm_greedy(served.vllm_url, served.adapter, prompt) for prompt in HELD_OUT]
    from_transformers = _transformers_greedy(served, HELD_OUT)
    for prompt, (vllm_ids, finish), hf_ids in zip(HELD_OUT, from_vllm, from_transformers):
        assert vllm_ids == hf_ids, f"{prompt!r}: vLLM {vllm_ids} != transformers {hf_ids}"
        assert finish == "stop" and hf_ids[-1] == eos and len(hf_ids) < MAX_TOKENS, (prompt, finish, hf_ids)


def test_the_adapter_learned_the_style_and_the_base_has_not(served):
    sampling = spb.Sampling(max_tokens=MAX_TOKENS)
    replies = [served.proxy.CompareOne(spb.CompareOneRequest(prompt=prompt, adapter_name=served.adapter,
                                                             target=served.vllm_url, sampling=sampling),
                                       timeout=240) for prompt in HELD_OUT]
    assert {r.prompt_format for r in replies} == {"chat"}
    adapter = [r.adapter.text for r in replies]
    base = [r.base.text for r in replies]
    assert sum(map(follows_style, adapter)) >= len(HELD_OUT) - 1, adapter
    assert sum(map(follows_style, base)) == 0, base
    # The converted weights are the real model's (README: Models): it knows its capitals.
    capital = served.proxy.CompareOne(spb.CompareOneRequest(
        prompt="What is the capital of France?", adapter_name=served.adapter, target=served.vllm_url,
        sampling=spb.Sampling(max_tokens=16)), timeout=240)
    assert "Paris" in capital.base.text, capital.base.text
