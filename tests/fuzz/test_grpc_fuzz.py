"""gRPC fuzzing: hypothesis-generated requests for every RPC of the three services.

Each service runs as a real process on loopback with a throwaway data root. Every RPC in
its descriptor (so a new RPC is covered without touching this file) gets random requests
built from its message descriptor, half of them mutations of a well-formed request so that
they get past the first check. Whatever the request, the answer must be a status the caller
can act on: never UNKNOWN, INTERNAL, DATA_LOSS or UNIMPLEMENTED, UNAVAILABLE only from the
serving proxy (its vLLM is a closed port), DEADLINE_EXCEEDED only on a stream that is still
following; a call without the right token is UNAUTHENTICATED. The process must stay up, and
afterwards health answers SERVING and a well-formed request still works.

Nothing leaves the machine: every http(s) URL in a request is rewritten to a closed loopback
port (tests.support.proto_fuzz.loopback_only), the trainer has no models (nothing trains),
and any job or run a request manages to start is cancelled at once.

SYNTHTUNE_FUZZ_REQUESTS sets the total budget (default 8000, about a minute on 2 cores;
`make fuzz-grpc` runs 40000); SYNTHTUNE_FUZZ_SEED=N draws other cases than the derandomized default.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from synthtune.datagen.v1 import datagen_pb2
from synthtune.readiness import free_port
from synthtune.serving.v1 import serving_pb2
from synthtune.trainer.v1 import trainer_pb2
from tests.datagen_svc.conftest import FAST_RETRY_ENV
from tests.fuzz.conftest import SUMMARY
from tests.serving_proxy_svc.conftest import write_adapter
from tests.support.procs import TEST_GRPC_TOKEN, ServiceProcess, start_service
from tests.support.proto_fuzz import loopback_only, messages, mutations
from trainer_svc.runs import Run, RunState, RunStore

TOTAL_REQUESTS = int(os.environ.get("SYNTHTUNE_FUZZ_REQUESTS", "8000"))
# Unset: derandomized, the same cases every run (CI). A number: other cases, reproducible with it.
SEED = int(os.environ["SYNTHTUNE_FUZZ_SEED"]) if os.environ.get("SYNTHTUNE_FUZZ_SEED") else None
UNARY_TIMEOUT_S = 30.0  # a unary call that needs this long is hanging: DEADLINE_EXCEEDED fails the test
EMPTY_REQUEST_EXAMPLES = 25
STREAM_TIMEOUT_S = 1.5
STREAM_MAX_MESSAGES = 5
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS,
         grpc.StatusCode.UNIMPLEMENTED}
CLOSED_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens here: every outbound call fails at once
FINISHED_RUN = "f" * 32
AUTH = ("token", "token", "token", "token", "token", "none", "wrong", "not-bearer")


@dataclass
class Service:
    """One service under fuzz: how to start it, its RPCs, its well-formed requests, how to clean up."""

    name: str
    module: str
    listen_var: str
    pb2: ModuleType
    service: str
    upstream: bool = False  # it calls an upstream (vLLM) that is down, so UNAVAILABLE is an honest answer
    templates: dict[str, list[Message]] = field(default_factory=dict)

    @property
    def descriptor(self):
        return self.pb2.DESCRIPTOR.services_by_name[self.service]

    @property
    def full_name(self) -> str:
        return self.descriptor.full_name


SERVICES = {
    "datagen": Service("datagen", "datagen_svc", "SYNTHTUNE_DATAGEN_LISTEN", datagen_pb2, "DatagenService"),
    "trainer": Service("trainer", "trainer_svc", "SYNTHTUNE_TRAINER_LISTEN", trainer_pb2, "TrainerService"),
    "serving": Service("serving", "serving_proxy_svc", "SYNTHTUNE_SERVING_PROXY_LISTEN", serving_pb2,
                       "ServingProxyService", upstream=True),
}
CASES = [(name, method.name) for name, svc in SERVICES.items() for method in svc.descriptor.methods]


def _examples_per_rpc() -> int:
    # Shared by the RPCs whose request has fields; the others get EMPTY_REQUEST_EXAMPLES.
    with_fields = sum(1 for name, rpc in CASES if SERVICES[name].descriptor.methods_by_name[rpc].input_type.fields)
    return max(10, TOTAL_REQUESTS // max(1, with_fields))


@dataclass
class Stats:
    sent: int = 0
    seconds: float = 0.0
    codes: collections.Counter = field(default_factory=collections.Counter)
    by_rpc: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    started: int = 0  # jobs or runs a fuzzed request started (each cancelled at once)


class Running:
    """The started services of this module, each with a channel and the ids the templates use."""

    def __init__(self, base: Path):
        self.base = base
        self.procs: dict[str, ServiceProcess] = {}
        self.channels: dict[str, grpc.Channel] = {}
        self.stats: dict[str, Stats] = collections.defaultdict(Stats)
        self.names = itertools.count()

    def get(self, name: str) -> tuple[ServiceProcess, grpc.Channel]:
        if name not in self.procs:
            root = self.base / name / "data"
            root.mkdir(parents=True)
            env = {"SYNTHTUNE_DATA_ROOT": str(root), **_SETUP[name](root)}
            svc = SERVICES[name]
            self.procs[name] = start_service(svc.module, listen_var=svc.listen_var, env=env,
                                             log_path=self.base / f"{name}.log")
            self.channels[name] = grpc.insecure_channel(self.procs[name].address)
            _TEMPLATES[name](self, svc, root)
        return self.procs[name], self.channels[name]

    def check_nothing_left_running(self) -> None:
        """Every job a fuzzed request started has ended (failed on the closed port, or cancelled); the
        trainer holds no run but the one written for it: nothing trains, nothing burns CPU afterwards."""
        meta = _metadata("token")
        if "datagen" in self.channels:
            svc, deadline = SERVICES["datagen"], time.monotonic() + 20
            while True:
                jobs = _unary(self.channels["datagen"], svc, "ListGenerations")(
                    datagen_pb2.ListGenerationsRequest(), metadata=meta, timeout=10).jobs
                busy = [j.job_id for j in jobs if j.state in (datagen_pb2.JOB_STATE_QUEUED, datagen_pb2.JOB_STATE_RUNNING)]
                if not busy or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert not busy, f"{len(busy)} generation jobs still running after the fuzz"
        if "trainer" in self.channels:
            runs = _unary(self.channels["trainer"], SERVICES["trainer"], "ListRuns")(
                trainer_pb2.ListRunsRequest(), metadata=meta, timeout=10).runs
            assert [r.run_id for r in runs] == [FINISHED_RUN], runs

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        for proc in self.procs.values():
            proc.stop()


# -- each service's environment and well-formed requests -----------------------------------------


def _rows(n: int) -> str:
    return "".join(json.dumps({"instruction": f"Question {i}?", "output": f"Answer {i}."}) + "\n" for i in range(n))


def _datagen_env(root: Path) -> dict[str, str]:
    (root / "datasets").mkdir()
    (root / "datasets" / "fuzz-src.jsonl").write_text(_rows(3))
    return {**FAST_RETRY_ENV, "SYNTHTUNE_DATAGEN_MAX_RUNNING_JOBS": "2"}


def _trainer_env(root: Path) -> dict[str, str]:
    (root / "datasets").mkdir()
    (root / "datasets" / "fuzz-train.jsonl").write_text(_rows(8))
    (root / "datasets" / "fuzz-eval.jsonl").write_text(_rows(2))
    empty = root.parent / "no-models"
    (empty / "hub").mkdir(parents=True)
    # No local model and an empty, offline hub cache: a run can be validated up to its model, never trained.
    # One finished run to get, watch, and fail to cancel or resume (only failed runs resume: nothing trains).
    store = RunStore(root)
    run = Run(run_id=FINISHED_RUN, base_model="tiny-phi3", state=RunState.VALIDATING)
    store.add(run)
    store.append(run, "log", {"level": "info", "message": "written by the fuzz test"})
    store.set_state(run, RunState.CANCELLED, error="cancelled by request")
    return {"SYNTHTUNE_MODELS_ROOT": str(empty), "SYNTHTUNE_HF_HUB_CACHE": str(empty / "hub"), "HF_HUB_OFFLINE": "1",
            "SYNTHTUNE_TRAINER_CANCEL_GRACE_S": "1"}


def _serving_env(root: Path) -> dict[str, str]:
    (root / "datasets").mkdir()
    (root / "datasets" / "fuzz-eval.jsonl").write_text(_rows(3))
    write_adapter(root / "adapters", "fuzz-adapter-v1", eval_rows=[{"instruction": "Hi?", "output": "Hello."}])
    return {"SYNTHTUNE_VLLM_URL": CLOSED_URL, "SYNTHTUNE_VLLM_TIMEOUT_S": "2",
            "SYNTHTUNE_VLLM_GENERATION_TIMEOUT_S": "2"}


_SETUP: dict[str, Callable[[Path], dict[str, str]]] = {
    "datagen": _datagen_env, "trainer": _trainer_env, "serving": _serving_env}


def _endpoint(pb) -> Message:
    return pb.Endpoint(base_url=f"{CLOSED_URL}/v1", model="fuzz-model", request_timeout_s=1, max_retries=0)


def _datagen_templates(running: Running, svc: Service, root: Path) -> None:
    pb = datagen_pb2
    start = [
        pb.StartGenerationRequest(dataset_name="fuzz-ok", endpoint=_endpoint(pb), num_rows=2,
                                  mode=pb.GENERATION_MODE_FIXED, prompt_template="Say hi.",
                                  limits=pb.Limits(concurrency=1)),
        pb.StartGenerationRequest(dataset_name="fuzz-ok", endpoint=_endpoint(pb), num_rows=2,
                                  mode=pb.GENERATION_MODE_FROM_INSTRUCTIONS, instructions=["A?", "B?"],
                                  filters=pb.Filters(near_dup=pb.NearDupFilter(enabled=True),
                                                     decontam=pb.DecontamFilter(eval_paths=["datasets/fuzz-src.jsonl"]),
                                                     judge=pb.JudgeFilter(endpoint=_endpoint(pb)))),
        pb.StartGenerationRequest(dataset_name="fuzz-ok", endpoint=_endpoint(pb), num_rows=3,
                                  mode=pb.GENERATION_MODE_EVOL_INSTRUCT, seed_examples=["How do I bake bread?"],
                                  evol_instruct=pb.EvolInstruct(rounds=1)),
        pb.StartGenerationRequest(dataset_name="fuzz-ok", endpoint=_endpoint(pb), num_rows=3,
                                  mode=pb.GENERATION_MODE_TOPIC_TREE, topic="cooking",
                                  topic_tree=pb.TopicTree(depth=1, breadth=2)),
        pb.StartGenerationRequest(dataset_name="fuzz-ok", mode=pb.GENERATION_MODE_CURATE,
                                  source_path="datasets/fuzz-src.jsonl"),
    ]
    stub_call = _unary(running.channels["datagen"], svc, "StartGeneration")
    first = _fresh_name(running, start[0])
    job = stub_call(first, metadata=_metadata("token"), timeout=UNARY_TIMEOUT_S).job
    _cancel_quietly(running.channels["datagen"], svc, "CancelGeneration", pb.CancelGenerationRequest(job_id=job.job_id))
    svc.templates = {
        "StartGeneration": start,
        "WatchGeneration": [pb.WatchGenerationRequest(job_id=job.job_id)],
        "GetGeneration": [pb.GetGenerationRequest(job_id=job.job_id)],
        "CancelGeneration": [pb.CancelGenerationRequest(job_id=job.job_id)],
        "ResumeGeneration": [pb.ResumeGenerationRequest(job_id=job.job_id)],
    }


def _trainer_templates(running: Running, svc: Service, root: Path) -> None:
    pb = trainer_pb2
    start = pb.StartRunRequest(base_model="tiny-phi3", datasets=["datasets/fuzz-train.jsonl"],
                               hyperparameters=pb.Hyperparameters(epochs=1, max_length=64, device="cpu"))
    sha256 = hashlib.sha256((root / "datasets" / "fuzz-train.jsonl").read_bytes()).hexdigest()
    refs = pb.StartRunRequest(base_model="org/model", dataset_refs=[pb.DatasetRef(
        path="datasets/fuzz-train.jsonl", name="fuzz-train", version=1, sha256=sha256)], adapter_name="fuzz-adapter",
        eval_datasets=["datasets/fuzz-eval.jsonl"], hyperparameters=pb.Hyperparameters(
            lora_r=8, eval_steps=1, eval_generate_rows=1, best_metric="eval_chrf", report_to="none"))
    svc.templates = {
        "StartRun": [start, refs],
        "WatchRun": [pb.WatchRunRequest(run_id=FINISHED_RUN)],
        "GetRun": [pb.GetRunRequest(run_id=FINISHED_RUN)],
        "CancelRun": [pb.CancelRunRequest(run_id=FINISHED_RUN)],
        "ResumeRun": [pb.ResumeRunRequest(run_id=FINISHED_RUN)],
    }


def _serving_templates(running: Running, svc: Service, root: Path) -> None:
    pb = serving_pb2
    judge = pb.Judge(base_url=f"{CLOSED_URL}/v1", model="fuzz-judge", request_timeout_s=1, max_retries=0)
    svc.templates = {
        "LoadAdapter": [pb.LoadAdapterRequest(adapter_name="fuzz-adapter-v1")],
        "UnloadAdapter": [pb.UnloadAdapterRequest(served_name="fuzz-adapter-v1")],
        "ListServedModels": [pb.ListServedModelsRequest(targets=[CLOSED_URL])],
        "CompareOne": [pb.CompareOneRequest(prompt="Hi?", adapter_name="fuzz-adapter-v1",
                                            sampling=pb.Sampling(max_tokens=4))],
        "CompareBatch": [pb.CompareBatchRequest(adapter_name="fuzz-adapter-v1", dataset_path="datasets/fuzz-eval.jsonl",
                                                limit=2, judge=judge),
                         pb.CompareBatchRequest(adapter_name="fuzz-adapter-v1", limit=1)],
    }


_TEMPLATES: dict[str, Callable[[Running, Service, Path], None]] = {
    "datagen": _datagen_templates, "trainer": _trainer_templates, "serving": _serving_templates}
# Jobs and runs a request may start: the RPC that stops them, and its request.
_CANCEL = {"datagen": ("CancelGeneration", lambda pb, r: pb.CancelGenerationRequest(job_id=r.job.job_id), "job"),
           "trainer": ("CancelRun", lambda pb, r: pb.CancelRunRequest(run_id=r.run.run_id), "run")}


# -- calls ---------------------------------------------------------------------------------------


def _classes(method: MethodDescriptor):
    return message_factory.GetMessageClass(method.input_type), message_factory.GetMessageClass(method.output_type)


def _path(svc: Service, rpc: str) -> str:
    return f"/{svc.full_name}/{rpc}"


def _unary(channel: grpc.Channel, svc: Service, rpc: str):
    request_cls, response_cls = _classes(svc.descriptor.methods_by_name[rpc])
    return channel.unary_unary(_path(svc, rpc), request_serializer=request_cls.SerializeToString,
                               response_deserializer=response_cls.FromString)


def _stream(channel: grpc.Channel, svc: Service, rpc: str):
    request_cls, response_cls = _classes(svc.descriptor.methods_by_name[rpc])
    return channel.unary_stream(_path(svc, rpc), request_serializer=request_cls.SerializeToString,
                                response_deserializer=response_cls.FromString)


def _metadata(auth: str, request_id: str | None = None) -> list[tuple[str, str]]:
    metadata = {"token": [("authorization", f"Bearer {TEST_GRPC_TOKEN}")], "none": [],
                "wrong": [("authorization", "Bearer wrong-token")],
                "not-bearer": [("authorization", TEST_GRPC_TOKEN)]}[auth]
    return metadata + ([("x-request-id", request_id)] if request_id is not None else [])


def _cancel_quietly(channel: grpc.Channel, svc: Service, rpc: str, request: Message) -> None:
    """Stop a job or run; one that already ended answers FAILED_PRECONDITION, which is fine."""
    try:
        _unary(channel, svc, rpc)(request, metadata=_metadata("token"), timeout=UNARY_TIMEOUT_S)
    except grpc.RpcError as exc:
        assert exc.code() not in NEVER, f"{rpc} of a fuzz-started job: {exc.code()} {exc.details()}"


def _fresh_name(running: Running, request: Message) -> Message:
    """A template's dataset name made unique, so a request that is valid is accepted, not ALREADY_EXISTS."""
    if getattr(request, "dataset_name", None) == "fuzz-ok":
        copy = type(request)()
        copy.CopyFrom(request)
        copy.dataset_name = f"fuzz-ok-{next(running.names)}"
        return copy
    return request


def _call(channel: grpc.Channel, svc: Service, method: MethodDescriptor, request: Message,
          metadata) -> tuple[grpc.StatusCode, str, Message | None]:
    """(status, details, the unary response or None)."""
    try:
        if method.server_streaming:
            call = _stream(channel, svc, method.name)(request, metadata=metadata, timeout=STREAM_TIMEOUT_S)
            try:
                for _ in zip(range(STREAM_MAX_MESSAGES), call):
                    pass
            finally:
                call.cancel()
            return grpc.StatusCode.OK, "", None
        response = _unary(channel, svc, method.name)(request, metadata=metadata, timeout=UNARY_TIMEOUT_S)
        return grpc.StatusCode.OK, "", response
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.CANCELLED and method.server_streaming:
            return grpc.StatusCode.OK, "", None  # our own cancel after STREAM_MAX_MESSAGES
        return exc.code(), exc.details() or "", None


def _check_healthy(running: Running, name: str) -> None:
    """Up, health SERVING (overall and for the service), and a well-formed request answered."""
    proc, channel = running.get(name)
    svc = SERVICES[name]
    assert proc.proc.poll() is None, f"{name} exited with {proc.proc.returncode}:\n{proc.log_text()[-4000:]}"
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", svc.full_name):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING, (name, service, status)
    meta = _metadata("token")
    if name == "datagen":
        job_id = svc.templates["GetGeneration"][0].job_id
        assert _unary(channel, svc, "GetGeneration")(datagen_pb2.GetGenerationRequest(job_id=job_id), metadata=meta,
                                                     timeout=10).job.job_id == job_id
        request = _fresh_name(running, svc.templates["StartGeneration"][0])
        job = _unary(channel, svc, "StartGeneration")(request, metadata=meta, timeout=10).job
        assert job.dataset_name == request.dataset_name
        _cancel_quietly(channel, svc, "CancelGeneration", datagen_pb2.CancelGenerationRequest(job_id=job.job_id))
    elif name == "trainer":
        _unary(channel, svc, "ListRuns")(trainer_pb2.ListRunsRequest(), metadata=meta, timeout=10)
        with pytest.raises(grpc.RpcError) as info:  # validated as far as the model, which isn't there
            _unary(channel, svc, "StartRun")(svc.templates["StartRun"][0], metadata=meta, timeout=UNARY_TIMEOUT_S)
        assert info.value.code() not in NEVER | {grpc.StatusCode.UNAUTHENTICATED}, info.value.details()
    else:
        reply = _unary(channel, svc, "ListServedModels")(serving_pb2.ListServedModelsRequest(), metadata=meta,
                                                         timeout=10)
        assert [t.target for t in reply.targets] == [CLOSED_URL] and not reply.targets[0].reachable, reply


# -- the tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[Running]:
    services = Running(tmp_path_factory.mktemp("fuzz"))
    try:
        yield services
        services.check_nothing_left_running()
    finally:
        services.close()
    for name, stats in services.stats.items():
        codes = ", ".join(f"{code.name} {n}" for code, n in stats.codes.most_common())
        SUMMARY.append(f"gRPC fuzz {name}: {stats.sent} requests in {stats.seconds:.1f} s, {stats.started} "
                       f"jobs/runs started and cancelled; {codes}")
        for rpc, counts in stats.by_rpc.items():
            SUMMARY.append(f"  {rpc}: " + ", ".join(f"{code.name} {n}" for code, n in counts.most_common()))


@pytest.mark.parametrize(("name", "rpc"), CASES, ids=[f"{n}-{r}" for n, r in CASES])
def test_fuzzed_requests_get_a_precise_status(running, name, rpc):
    proc, channel = running.get(name)
    svc = SERVICES[name]
    method = svc.descriptor.methods_by_name[rpc]
    stats = running.stats[name]
    requests = messages(method.input_type, closed_url=CLOSED_URL)
    templates = svc.templates.get(rpc, [])
    if templates:
        requests = st.one_of(requests, *(mutations(t, closed_url=CLOSED_URL) for t in templates))
    request_ids = st.one_of(st.none(), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200))
    started = time.monotonic()

    # A request without fields varies only in its token and request id: a few cases cover it.
    examples = _examples_per_rpc() if method.input_type.fields else EMPTY_REQUEST_EXAMPLES

    @settings(max_examples=examples, deadline=None, database=None, derandomize=SEED is None,
              suppress_health_check=list(HealthCheck))
    @given(request=requests, auth=st.sampled_from(AUTH), request_id=request_ids)
    @seed(SEED)
    def fuzz(request: Message, auth: str, request_id: str | None) -> None:
        request = _fresh_name(running, loopback_only(request, CLOSED_URL))
        code, details, response = _call(channel, svc, method, request, _metadata(auth, request_id))
        stats.sent += 1
        stats.codes[code] += 1
        stats.by_rpc[rpc][code] += 1
        context = f"{rpc}({request!r:.1500}) with auth {auth!r} -> {code.name}: {details[:500]}"
        assert proc.proc.poll() is None, f"{name} died on {context}\n{proc.log_text()[-4000:]}"
        if auth != "token":
            assert code == grpc.StatusCode.UNAUTHENTICATED, context
            return
        assert code not in NEVER | {grpc.StatusCode.UNAUTHENTICATED}, context
        # The client's own verdict on a status too big to deliver (its metadata passed 8 KiB).
        assert not (code == grpc.StatusCode.RESOURCE_EXHAUSTED and "metadata size" in details), context
        if code == grpc.StatusCode.UNAVAILABLE:  # only the closed port, named: the proxy's vLLM or a judge
            assert svc.upstream and urlsplit(CLOSED_URL).netloc in details, context
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            assert method.server_streaming, context  # a unary call this slow hangs
        if name in _CANCEL and response is not None and rpc.startswith(("Start", "Resume")):
            cancel_rpc, make, kind = _CANCEL[name]
            stats.started += 1
            _cancel_quietly(channel, svc, cancel_rpc, make(svc.pb2, response))

    try:
        fuzz()
    finally:
        stats.seconds += time.monotonic() - started
    _check_healthy(running, name)
