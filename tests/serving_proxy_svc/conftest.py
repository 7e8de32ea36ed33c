"""Fixtures for the serving proxy: an in-process server, adapter folders, exported adapters.

Tests against the real vLLM share the session server (`vllm_server`), which keeps
what was loaded into it, so every test exports adapters under its own stem
(`unique_stem`): a served name is never reused for another folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import grpc
import pytest

from serving_proxy_svc.config import load_settings
from serving_proxy_svc.proxy import ServingProxy
from serving_proxy_svc.server import build_server
from synthtune.grpc_client import open_channel
from synthtune.grpc_server import start as start_server
from synthtune.readiness import free_port
from synthtune.serving.v1 import serving_pb2 as pb
from synthtune.serving.v1 import serving_pb2_grpc
from tests.support.procs import TEST_GRPC_TOKEN

RPC_TIMEOUT_S = 60  # generous: other test sessions load the machine
GENERATION_RPC_TIMEOUT_S = 240


class InProcessProxy:
    """The proxy's gRPC server in a background event loop of this process."""

    def __init__(self, data_root: Path, **overrides: Any):
        self.settings = load_settings(data_root=data_root, grpc_token=TEST_GRPC_TOKEN, **overrides)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxy-inproc", daemon=True)
        self.proxy: ServingProxy | None = None
        self.handle = None
        self.channel: grpc.Channel | None = None

    def call(self, coro, timeout_s: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def __enter__(self) -> Self:
        self.thread.start()

        async def boot():
            self.proxy = ServingProxy(self.settings)
            self.handle = build_server(self.settings, self.proxy, "127.0.0.1:0")
            await start_server(self.handle)

        self.call(boot())
        self.address = f"127.0.0.1:{self.handle.port}"
        self.channel = open_channel(self.address, token=TEST_GRPC_TOKEN)
        self.stub = serving_pb2_grpc.ServingProxyServiceStub(self.channel)
        return self

    def __exit__(self, *exc) -> None:
        self.channel.close()

        async def down():
            await self.handle.server.stop(0)
            await self.proxy.aclose()

        self.call(down())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    # -- the calls the tests make ---------------------------------------------------------------

    def load(self, adapter_name: str, targets=(), token: str = "") -> pb.LoadAdapterResponse:
        request = pb.LoadAdapterRequest(adapter_name=adapter_name, targets=list(targets), token=token)
        return self.stub.LoadAdapter(request, timeout=RPC_TIMEOUT_S)

    def unload(self, served_name: str, targets=(), token: str = "") -> pb.UnloadAdapterResponse:
        request = pb.UnloadAdapterRequest(served_name=served_name, targets=list(targets), token=token)
        return self.stub.UnloadAdapter(request, timeout=RPC_TIMEOUT_S)

    def list(self, targets=(), token: str = "") -> pb.ListServedModelsResponse:
        return self.stub.ListServedModels(pb.ListServedModelsRequest(targets=list(targets), token=token),
                                          timeout=RPC_TIMEOUT_S)

    def compare(self, prompt: str, adapter_name: str, **fields: Any) -> pb.CompareOneResponse:
        request = pb.CompareOneRequest(prompt=prompt, adapter_name=adapter_name, **fields)
        return self.stub.CompareOne(request, timeout=GENERATION_RPC_TIMEOUT_S)

    def compare_batch(self, adapter_name: str, **fields: Any) -> list[pb.CompareBatchEvent]:
        request = pb.CompareBatchRequest(adapter_name=adapter_name, **fields)
        return list(self.stub.CompareBatch(request, timeout=GENERATION_RPC_TIMEOUT_S))


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    """The RpcError `call(*args, **kwargs)` raises (fails the test if it succeeds)."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.fixture
def make_proxy() -> Iterator:
    """make_proxy(data_root, **settings) -> a started InProcessProxy, stopped after the test."""
    started: list[InProcessProxy] = []

    def make(data_root: Path, **overrides: Any) -> InProcessProxy:
        proxy = InProcessProxy(data_root, **overrides).__enter__()
        started.append(proxy)
        return proxy

    yield make
    for proxy in reversed(started):
        proxy.__exit__(None, None, None)


@pytest.fixture
def closed_url() -> str:
    """A loopback URL nothing listens on: a vLLM that is down."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def unique_stem(request) -> str:
    """An adapter stem no other test uses, so served names never collide on the shared vLLM."""
    base = "".join(ch if ch.isalnum() else "-" for ch in request.node.name.removeprefix("test_"))[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:6]}"


# -- adapter folders written by hand (fast tests: no torch, no vLLM) ------------------------------


def write_adapter(adapters_dir: Path, name: str, *, base: str = "tiny-phi3", r: int = 8, prompt_format: str = "chat",
                  eval_rows: list[dict] | None = None, manifest: dict | None | bool = True,
                  weights: bool = True) -> Path:
    """An export-shaped folder: adapter_config.json, weights (dummy bytes), manifest.json (unless False)."""
    folder = adapters_dir / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({
        "base_model_name_or_path": base, "r": r, "lora_alpha": 2 * r, "peft_type": "LORA",
        "target_modules": ["qkv_proj", "o_proj"]}))
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(b"not real weights")
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    eval_split = None
    if eval_rows is not None:
        data = "".join(json.dumps(row) + "\n" for row in eval_rows).encode()
        (folder / "eval.jsonl").write_bytes(data)
        eval_split = {"file": "eval.jsonl", "rows": len(eval_rows), "sha256": hashlib.sha256(data).hexdigest()}
        files["eval.jsonl"] = eval_split["sha256"]
    if manifest:
        content = {"schema_version": 1, "name": name, "run_id": "run-x", "base_model": {"id": base},
                   "prompt_format": prompt_format, "eval_split": eval_split, "files": files,
                   "hyperparameters": {"lora": {"r": r}}}
        if isinstance(manifest, dict):
            content.update(manifest)
        (folder / "manifest.json").write_text(json.dumps(content))
    return folder


# -- real exports (trainer_svc.export) of untrained LoRA weights, for the real vLLM ---------------


class AdapterFactory:
    """Exports LoRA adapters of the tiny models with random (non-zero) weights, the trainer's way."""

    def __init__(self, models: Path):
        self.models = models
        self._peft: dict[tuple[str, int], Any] = {}
        self._tokenizers: dict[str, Any] = {}

    def export(self, data_root: Path, stem: str, *, model: str = "tiny-phi3", r: int = 8,
               eval_rows: list[dict] | None = None) -> str:
        """Export into data_root/adapters/<stem>-v<N>; return that name."""
        from trainer_svc.export import Lineage, export_adapter

        tokenizer = self._tokenizer(model)
        lineage = Lineage(
            run_id=f"run-{stem}", base_model_id=model, base_model_architecture="test",
            prompt_format="chat" if tokenizer.chat_template else "instruction", datasets=[],
            hyperparameters={"lora": {"r": r}}, metrics={},
        )
        result = export_adapter(self._peft_model(model, r), tokenizer, data_root=data_root, stem=stem,
                                lineage=lineage, eval_rows=eval_rows)
        return result.name

    def _tokenizer(self, model: str):
        if model not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[model] = AutoTokenizer.from_pretrained(self.models / model)
        return self._tokenizers[model]

    def _peft_model(self, model: str, r: int):
        if (model, r) not in self._peft:
            import torch
            from peft import LoraConfig, get_peft_model
            from transformers import AutoModelForCausalLM

            torch.manual_seed(r)
            base = AutoModelForCausalLM.from_pretrained(self.models / model)
            config = LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights=False,
                                task_type="CAUSAL_LM")
            self._peft[(model, r)] = get_peft_model(base, config)
        return self._peft[(model, r)]


@pytest.fixture(scope="session")
def adapter_factory(tiny_models) -> AdapterFactory:
    return AdapterFactory(tiny_models)


@pytest.fixture(scope="session")
def serving_root(tmp_path_factory) -> Path:
    """One data root for the tests that load into the session vLLM (stems are unique per test)."""
    root = tmp_path_factory.mktemp("serving") / "data"
    (root / "adapters").mkdir(parents=True)
    (root / "datasets").mkdir()
    return root
