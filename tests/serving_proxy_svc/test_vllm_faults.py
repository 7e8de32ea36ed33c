"""Faults that need a vLLM in another state: restarted after a load, runtime LoRA off, --api-key on.

The restart test restarts the session server (VllmServer.restart keeps the port);
every other test loads what it needs, so none depends on what survived it.
The second server runs without VLLM_ALLOW_RUNTIME_LORA_UPDATING and with
--api-key, like a production vLLM someone forgot to configure for hot-loading.
"""

from __future__ import annotations

import grpc
import pytest

from synthtune.local_vllm import VllmServer
from tests.serving_proxy_svc.conftest import rpc_error, write_adapter
from tests.support.procs import TEST_GRPC_TOKEN, running_service

pytestmark = pytest.mark.slow

VLLM_API_KEY = "vllm-api-key-canary-6f2b9c"


def test_a_restarted_vllm_has_lost_the_adapter(make_proxy, vllm_server, serving_root, adapter_factory, unique_stem):
    name = adapter_factory.export(serving_root, unique_stem)
    proxy = make_proxy(serving_root, vllm_url=vllm_server.url)
    proxy.load(name)
    assert name in {m.id for m in proxy.list().targets[0].models}

    vllm_server.restart()

    [target] = proxy.list().targets
    assert target.reachable and [m.id for m in target.models] == ["tiny-phi3"]
    error = rpc_error(proxy.compare, "Hi", name)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "restarted vLLM" in error.details()
    error = rpc_error(proxy.compare, "Hi", name, served_name=name)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = rpc_error(proxy.unload, name)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    # Loading again is a fresh load, not an "already loaded".
    reloaded = proxy.load(name)
    assert reloaded.replicas[0].ok and not reloaded.replicas[0].already_loaded
    assert proxy.compare("Hi", name, sampling={"max_tokens": 4}).adapter.model == name


@pytest.fixture(scope="module")
def locked_vllm(tiny_models, tmp_path_factory):
    log = tmp_path_factory.mktemp("vllm-locked") / "vllm.log"
    server = VllmServer(tiny_models / "tiny-phi3", served_name="tiny-phi3", log_path=log, runtime_lora=False,
                        extra_args=["--api-key", VLLM_API_KEY])
    with server:
        yield server


def test_without_the_vllm_token_calls_are_unauthenticated(make_proxy, locked_vllm, data_root):
    write_adapter(data_root / "adapters", "x-v1")
    proxy = make_proxy(data_root, vllm_url=locked_vllm.url)
    for call in (lambda: proxy.load("x-v1"), lambda: proxy.compare("Hi", "x-v1"),
                 lambda: proxy.load("x-v1", token="wrong-token-123456")):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "--api-key" in error.details()
        assert locked_vllm.url in error.details()
    [target] = proxy.list().targets
    assert not target.reachable and "401" in target.error
    assert proxy.list(token=VLLM_API_KEY).targets[0].reachable


def test_runtime_lora_off_is_a_failed_precondition_naming_the_flag(make_proxy, locked_vllm, serving_root,
                                                                  adapter_factory, unique_stem):
    name = adapter_factory.export(serving_root, unique_stem)
    proxy = make_proxy(serving_root, vllm_url=locked_vllm.url, vllm_token=VLLM_API_KEY)
    for call in (lambda: proxy.load(name), lambda: proxy.unload(name)):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in error.details()
    assert [m.id for m in proxy.list().targets[0].models] == ["tiny-phi3"]


def test_the_service_process_forwards_but_never_logs_the_vllm_token(locked_vllm, serving_root, adapter_factory,
                                                                    unique_stem, tmp_path):
    from synthtune.grpc_client import open_channel
    from synthtune.serving.v1 import serving_pb2 as pb
    from synthtune.serving.v1 import serving_pb2_grpc

    name = adapter_factory.export(serving_root, unique_stem)
    request_token = "request-token-canary-81d0e4"
    env = {"SYNTHTUNE_DATA_ROOT": str(serving_root), "SYNTHTUNE_VLLM_URL": locked_vllm.url,
           "SYNTHTUNE_VLLM_TOKEN": VLLM_API_KEY, "SYNTHTUNE_LOG_LEVEL": "DEBUG"}
    with running_service("serving_proxy_svc", listen_var="SYNTHTUNE_SERVING_PROXY_LISTEN", env=env,
                         log_path=tmp_path / "proxy.log") as service:
        channel = open_channel(service.address, token=TEST_GRPC_TOKEN)
        stub = serving_pb2_grpc.ServingProxyServiceStub(channel)
        # The configured token gets past --api-key: the answer is about the runtime flag.
        error = rpc_error(stub.LoadAdapter, pb.LoadAdapterRequest(adapter_name=name), timeout=60)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        # A request's token wins over the configured one.
        error = rpc_error(stub.LoadAdapter, pb.LoadAdapterRequest(adapter_name=name, token=request_token), timeout=60)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        listed = stub.ListServedModels(pb.ListServedModelsRequest(), timeout=60)
        assert listed.targets[0].reachable
        channel.close()
    log = service.log_text()
    assert '"vllm_auth": "configured"' in log  # the log is there, and says a token is set without showing it
    assert VLLM_API_KEY not in log and request_token not in log
