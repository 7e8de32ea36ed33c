"""THE FIDELITY TEST: what the trainer learned is what vLLM serves, through the proxy.

1. Fine-tune through the trainer SERVICE (a real `python -m trainer_svc`) on 100
   rows whose answer is always one sentence;
2. hot-load the exported adapter into a real vLLM CPU server through the proxy
   (a real `python -m serving_proxy_svc`);
3. CompareOne on 10 instructions never seen in training: the adapter's greedy
   output is exactly the sentence and stops on its own (finish_reason "stop",
   before max_tokens) 10 times out of 10; the base model's never is. CompareBatch
   over the run's held-out eval split agrees.
Once for tiny-phi3 (chat template: /v1/chat/completions) and once for
tiny-llama-plain (no template: "### Instruction:" text on /v1/completions).

Budget: under 3 minutes. Both runs are queued before any vLLM starts, so the
trainer's child process trains while the two vLLM servers boot.

Settings: the trainer's learning test (lr 5e-3, 15 epochs, one packed bin per
step) but LoRA r=8, the session vLLM's --max-lora-rank, with alpha 32 (the
learning test's r=16 has alpha 32 too). r=8 with alpha 16 missed 1 of 10 on
tiny-llama-plain. Measured with HF generate on the exported adapters, r=8 alpha
32 gives 10/10 on both models for seeds 1, 3, 7 and 42, every greedy token ahead
of the runner-up by at least 1.0 logits (seed 7: 1.29 plain, 1.58 phi3).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from synthtune.grpc_client import open_channel
from synthtune.local_vllm import VllmServer
from synthtune.serving.v1 import serving_pb2 as spb
from synthtune.serving.v1 import serving_pb2_grpc
from synthtune.trainer.v1 import trainer_pb2 as tpb
from synthtune.trainer.v1 import trainer_pb2_grpc
from tests.support.procs import START_RUN_TIMEOUT_S, TEST_GRPC_TOKEN, ServiceProcess, start_service
from tests.trainer_svc.conftest import ANSWER, HELD_OUT, fixed_answer_rows, write_dataset

# vllm: it asks for the session's vllm_server by request.getfixturevalue, which the marking in
# tests/conftest.py can't see; on the other side it would boot a second one (it once timed out there).
pytestmark = [pytest.mark.slow, pytest.mark.vllm]

MODELS = ("tiny-phi3", "tiny-llama-plain")
LEARN = tpb.Hyperparameters(lora_r=8, lora_alpha=32, learning_rate=5e-3, epochs=15, batch_size=1,
                            gradient_accumulation_steps=1, seed=7, device="cpu")
MAX_TOKENS = 32
TRAIN_TIMEOUT_S = 170
TERMINAL = {tpb.RUN_STATE_SUCCEEDED, tpb.RUN_STATE_FAILED, tpb.RUN_STATE_CANCELLED}


@dataclass
class Fidelity:
    proxy: serving_pb2_grpc.ServingProxyServiceStub
    adapters: dict[str, str]  # model -> exported adapter name
    targets: dict[str, str]  # model -> vLLM URL serving it
    seconds: dict[str, float]
    data_root: Path


def _wait_until_done(stub, run_id: str, deadline: float) -> tpb.Run:
    while True:
        run = stub.GetRun(tpb.GetRunRequest(run_id=run_id), timeout=30).run
        if run.state in TERMINAL or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


@pytest.fixture(scope="module")
def fidelity(request, tiny_models, tmp_path_factory):
    started = time.monotonic()
    data_root = tmp_path_factory.mktemp("fidelity") / "data"
    data_root.mkdir()
    logs = data_root.parent
    dataset = write_dataset(data_root, "fixed", fixed_answer_rows(100))
    trainer = start_service("trainer_svc", listen_var="SYNTHTUNE_TRAINER_LISTEN", log_path=logs / "trainer.log",
                            env={"SYNTHTUNE_DATA_ROOT": str(data_root), "SYNTHTUNE_MODELS_ROOT": str(tiny_models)})
    plain_vllm = VllmServer(tiny_models / "tiny-llama-plain", served_name="tiny-llama-plain",
                            log_path=logs / "vllm-plain.log", startup_timeout_s=300)
    proxy: ServiceProcess | None = None
    channel = None
    try:
        trainer_stub = trainer_pb2_grpc.TrainerServiceStub(open_channel(trainer.address, token=TEST_GRPC_TOKEN))
        suffix = uuid.uuid4().hex[:6]
        runs = {model: trainer_stub.StartRun(tpb.StartRunRequest(
            base_model=model, datasets=[dataset], hyperparameters=LEARN, adapter_name=f"fidelity-{model}-{suffix}"),
            timeout=START_RUN_TIMEOUT_S).run for model in MODELS}
        queued = time.monotonic()
        # Both vLLM servers boot while the trainer's child trains (one run at a time).
        phi3_vllm = request.getfixturevalue("vllm_server")
        plain_vllm.start()
        booted = time.monotonic()
        deadline = time.monotonic() + TRAIN_TIMEOUT_S
        done = {model: _wait_until_done(trainer_stub, run.run_id, deadline) for model, run in runs.items()}
        for model, run in done.items():
            assert run.state == tpb.RUN_STATE_SUCCEEDED, (
                f"{model}: {tpb.RunState.Name(run.state)} {run.error}\n{trainer.log_text()[-3000:]}")
        trained = time.monotonic()
        trainer.stop()

        targets = {"tiny-phi3": phi3_vllm.url, "tiny-llama-plain": plain_vllm.url}
        proxy = start_service("serving_proxy_svc", listen_var="SYNTHTUNE_SERVING_PROXY_LISTEN",
                              log_path=logs / "proxy.log",
                              env={"SYNTHTUNE_DATA_ROOT": str(data_root), "SYNTHTUNE_VLLM_URL": phi3_vllm.url,
                                   "SYNTHTUNE_VLLM_REPLICAS": f"{phi3_vllm.url},{plain_vllm.url}"})
        channel = open_channel(proxy.address, token=TEST_GRPC_TOKEN)
        seconds = {"queue_runs": queued - started, "boot_vllm": booted - queued, "wait_training": trained - booted}
        yield Fidelity(proxy=serving_pb2_grpc.ServingProxyServiceStub(channel),
                       adapters={model: run.adapter_path.rsplit("/", 1)[-1] for model, run in done.items()},
                       targets=targets, seconds=seconds, data_root=data_root)
    finally:
        if channel is not None:
            channel.close()
        if proxy is not None:
            proxy.stop()
        trainer.stop()
        plain_vllm.stop()
        print(f"\nfidelity: module total {time.monotonic() - started:.0f}s")


@pytest.mark.parametrize("model", MODELS)
def test_the_served_adapter_answers_the_sentence_and_stops(fidelity, model):
    started = time.monotonic()
    proxy, name, target = fidelity.proxy, fidelity.adapters[model], fidelity.targets[model]
    loaded = proxy.LoadAdapter(spb.LoadAdapterRequest(adapter_name=name, targets=[target]), timeout=120)
    assert [(r.target, r.ok) for r in loaded.replicas] == [(target, True)], loaded
    listed = proxy.ListServedModels(spb.ListServedModelsRequest(targets=[target]), timeout=60).targets[0]
    assert {m.id: m.parent for m in listed.models}[name] == model

    sampling = spb.Sampling(max_tokens=MAX_TOKENS)
    replies = [proxy.CompareOne(spb.CompareOneRequest(prompt=prompt, adapter_name=name, target=target,
                                                      sampling=sampling), timeout=240)
               for prompt in HELD_OUT]
    expected_format = "chat" if model == "tiny-phi3" else "instruction"
    assert {r.prompt_format for r in replies} == {expected_format}
    adapter = [(r.adapter.text.strip(), r.adapter.finish_reason) for r in replies]
    assert adapter == [(ANSWER, "stop")] * len(HELD_OUT), adapter
    assert all(r.adapter.completion_tokens < MAX_TOKENS for r in replies)
    base = [r.base.text.strip() for r in replies]
    assert all(text != ANSWER for text in base), base

    # The same through CompareBatch, over the run's held-out split (written next to the adapter).
    events = list(proxy.CompareBatch(spb.CompareBatchRequest(adapter_name=name, target=target, sampling=sampling),
                                     timeout=240))
    summary = events[-1].summary
    assert summary.rows == 10 == len(events) - 1 and summary.dataset_path == f"adapters/{name}/eval.jsonl"
    assert (summary.adapter.exact_match_rate, summary.adapter.stop_rate, summary.adapter.chrf) == (1.0, 1.0, 100.0)
    assert summary.base.exact_match_rate == 0.0 and summary.base.chrf < 50
    print(f"\n{model}: {fidelity.seconds} compare {time.monotonic() - started:.0f}s, adapter p50 "
          f"{summary.adapter.latency_p50_ms:.0f} ms, base p50 {summary.base.latency_p50_ms:.0f} ms")


def test_an_unloaded_adapter_is_not_found_and_its_folder_stays(fidelity):
    proxy, name, target = fidelity.proxy, fidelity.adapters["tiny-llama-plain"], fidelity.targets["tiny-llama-plain"]
    proxy.LoadAdapter(spb.LoadAdapterRequest(adapter_name=name, targets=[target]), timeout=120)
    unloaded = proxy.UnloadAdapter(spb.UnloadAdapterRequest(served_name=name, targets=[target]), timeout=60)
    assert [(r.target, r.ok) for r in unloaded.replicas] == [(target, True)]
    with pytest.raises(grpc.RpcError) as info:
        proxy.CompareOne(spb.CompareOneRequest(prompt="Hi", adapter_name=name, target=target), timeout=60)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert (fidelity.data_root / "adapters" / name / "adapter_model.safetensors").is_file()
