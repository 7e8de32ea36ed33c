"""Deployments fixtures: one data root for the session, shared by the control plane, the real
trainer (which exports the adapter once) and the real serving proxies in front of real vLLM
CPU servers.

Why one root: the proxy reads adapters/ and datasets/ under its data root, and vLLM loads the
adapter from its path there; exporting a fresh adapter per test would cost a training run each.
Per test, the DB is fresh (the Adapter row is recorded again) and whatever a test loaded into
the session's vLLM is unloaded afterwards.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from control_plane.runs.models import Adapter
from synthtune.grpc_client import open_channel
from synthtune.serving.v1 import serving_pb2 as spb
from synthtune.serving.v1.serving_pb2_grpc import ServingProxyServiceStub
from synthtune.trainer.v1 import trainer_pb2 as tpb
from synthtune.trainer.v1.trainer_pb2_grpc import TrainerServiceStub
from tests.control_plane.deployments.helpers import BASE_MODEL, pattern_rows
from tests.control_plane.helpers import jsonl
from tests.control_plane.runs.factories import AdapterFactory
from tests.support.procs import (
    START_RUN_TIMEOUT_S,
    TEST_GRPC_TOKEN,
    ServiceProcess,
    free_port,
    running_service,
    start_service,
)

TRAIN_TIMEOUT_S = 600
MAX_LORA_RANK = 8


@dataclass(frozen=True)
class Export:
    """An adapter folder under the session's adapters/, as the trainer (or a test) left it."""

    name: str
    path: Path
    manifest: dict

    def record(self) -> Adapter:
        """The Adapter row the worker records from the run's `exported` event."""
        return AdapterFactory(
            name=self.name,
            path=f"adapters/{self.name}",
            run=None,
            base_model=self.manifest["base_model"]["id"],
            prompt_format=self.manifest["prompt_format"],
            weights_sha256=self.manifest["weights_sha256"],
            manifest=self.manifest,
        )


@pytest.fixture(scope="session")
def serving_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serving-data")
    (root / "adapters").mkdir()
    (root / "datasets").mkdir()
    return root


@pytest.fixture
def data_root(serving_root: Path) -> Path:
    """Overrides the per-test root: the control plane shares the session's with the proxy."""
    return serving_root


@pytest.fixture(autouse=True)
def proxy_down(cp_settings):
    """Every deployments test: the proxy address points where nothing listens, until `proxy`."""
    cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = f"127.0.0.1:{free_port()}"
    return cp_settings


@pytest.fixture(scope="session")
def exported(serving_root: Path, tiny_models: Path, tmp_path_factory) -> Export:
    """One real adapter for the session: the trainer fine-tunes the tiny Phi-3 for one epoch on
    rows with a fixed answer pattern, holding some out (its eval.jsonl), and exports it."""
    (serving_root / "datasets" / "serving-train.jsonl").write_bytes(jsonl(pattern_rows(40)))
    logs = tmp_path_factory.mktemp("trainer-logs")
    with running_service(
        "trainer_svc",
        listen_var="SYNTHTUNE_TRAINER_LISTEN",
        env={"SYNTHTUNE_DATA_ROOT": str(serving_root), "SYNTHTUNE_MODELS_ROOT": str(tiny_models)},
        log_path=logs / "trainer.log",
    ) as trainer:
        channel = open_channel(trainer.address, token=TEST_GRPC_TOKEN)
        try:
            stub = TrainerServiceStub(channel)
            hyper = tpb.Hyperparameters(epochs=1, learning_rate=5e-3, max_length=128, eval_fraction=0.25)
            run = stub.StartRun(
                tpb.StartRunRequest(
                    base_model=BASE_MODEL,
                    datasets=["datasets/serving-train.jsonl"],
                    hyperparameters=hyper,
                    adapter_name="serving",
                ),
                timeout=START_RUN_TIMEOUT_S,
            ).run
            name = ""
            for event in stub.WatchRun(tpb.WatchRunRequest(run_id=run.run_id), timeout=TRAIN_TIMEOUT_S):
                kind = event.WhichOneof("kind")
                if kind == "exported":
                    name = event.exported.adapter_name
                elif kind == "state_changed" and event.state_changed.state in (
                    tpb.RUN_STATE_SUCCEEDED,
                    tpb.RUN_STATE_FAILED,
                    tpb.RUN_STATE_CANCELLED,
                ):
                    assert event.state_changed.state == tpb.RUN_STATE_SUCCEEDED, (
                        f"{event.state_changed.error}\n{trainer.log_text()[-3000:]}"
                    )
                    break
        finally:
            channel.close()
    assert name, "the run exported nothing"
    path = serving_root / "adapters" / name
    return Export(name=name, path=path, manifest=json.loads((path / "manifest.json").read_text()))


def _variant(source: Export, name: str, *, config: dict, base_model: str | None = None) -> Export:
    """A copy of `source` under another versioned name with adapter_config.json changed: an
    adapter the proxy must refuse (a rank above vLLM's maximum, another base model). The manifest
    is updated to match, as an export would have written it."""
    target = source.path.parent / name
    if not target.exists():
        shutil.copytree(source.path, target)
        config_path = target / "adapter_config.json"
        config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **config}, indent=2))
        manifest = json.loads((target / "manifest.json").read_text())
        manifest["name"] = name
        manifest["files"]["adapter_config.json"] = hashlib.sha256(config_path.read_bytes()).hexdigest()
        if base_model:
            manifest["base_model"]["id"] = base_model
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return Export(name=name, path=target, manifest=json.loads((target / "manifest.json").read_text()))


@pytest.fixture(scope="session")
def rank16(exported: Export) -> Export:
    return _variant(exported, "serving-rank16-v1", config={"r": 16, "lora_alpha": 32})


@pytest.fixture(scope="session")
def other_base(exported: Export) -> Export:
    return _variant(
        exported,
        "serving-llama-v1",
        config={"base_model_name_or_path": "tiny-llama"},
        base_model="tiny-llama",
    )


class Proxies:
    """Real serving proxies on the session's data root, one per vLLM configuration, started on
    first use and kept for the session (each is a few seconds to start)."""

    def __init__(self, data_root: Path, log_dir: Path):
        self.data_root = data_root
        self.log_dir = log_dir
        self._running: dict[tuple, ServiceProcess] = {}

    def get(self, url: str, *, replicas: tuple[str, ...] = ()) -> ServiceProcess:
        key = (url, replicas)
        if key not in self._running:
            env = {
                "SYNTHTUNE_DATA_ROOT": str(self.data_root),
                "SYNTHTUNE_VLLM_URL": url,
                "SYNTHTUNE_VLLM_MAX_LORA_RANK": str(MAX_LORA_RANK),
            }
            if replicas:
                env["SYNTHTUNE_VLLM_REPLICAS"] = ",".join(replicas)
            self._running[key] = start_service(
                "serving_proxy_svc",
                listen_var="SYNTHTUNE_SERVING_PROXY_LISTEN",
                env=env,
                log_path=self.log_dir / f"proxy-{len(self._running)}.log",
            )
        return self._running[key]

    def stop(self) -> None:
        for service in self._running.values():
            service.stop()


@pytest.fixture(scope="session")
def proxies(serving_root: Path, tmp_path_factory) -> Iterator[Proxies]:
    running = Proxies(serving_root, tmp_path_factory.mktemp("proxy-logs"))
    try:
        yield running
    finally:
        running.stop()


def unload_everything(address: str, target: str) -> None:
    """Leave `target` serving only its base model (for the next test)."""
    channel = open_channel(address, token=TEST_GRPC_TOKEN)
    try:
        stub = ServingProxyServiceStub(channel)
        listing = stub.ListServedModels(spb.ListServedModelsRequest(targets=[target]), timeout=30)
        for served in listing.targets:
            for model in served.models:
                if model.parent:
                    stub.UnloadAdapter(
                        spb.UnloadAdapterRequest(served_name=model.id, targets=[target]), timeout=60
                    )
    finally:
        channel.close()


def use_proxy(cp_settings, proxies: Proxies, url: str, **kwargs) -> ServiceProcess:
    service = proxies.get(url, **kwargs)
    cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = service.address
    return service


@pytest.fixture
def proxy(cp_settings, proxies: Proxies, vllm_server) -> Iterator[ServiceProcess]:
    """The real proxy in front of the session's vLLM; settings point at it. Afterwards the vLLM
    serves only its base model again."""
    service = use_proxy(cp_settings, proxies, vllm_server.url)
    yield service
    unload_everything(service.address, vllm_server.url)


@pytest.fixture
def adapter(exported: Export, db) -> Adapter:
    return exported.record()


@pytest.fixture(scope="session")
def spare_vllm(tiny_models: Path, tmp_path_factory):
    """A second real vLLM (tiny Phi-3) that tests may restart or start without runtime LoRA."""
    from synthtune.local_vllm import VllmServer

    log = tmp_path_factory.mktemp("spare-vllm") / "vllm.log"
    server = VllmServer(tiny_models / BASE_MODEL, served_name=BASE_MODEL, log_path=log, startup_timeout_s=300)
    try:
        yield server
    finally:
        server.stop()


def spare_with(server, *, runtime_lora: bool):
    """`server` running with runtime LoRA updating on or off (restarted if it must change)."""
    if server.runtime_lora != runtime_lora or not server.running:
        server.runtime_lora = runtime_lora
        server.restart()
    return server
