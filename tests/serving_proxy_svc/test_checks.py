"""What the proxy refuses before it asks vLLM anything, through real gRPC (no vLLM needed).

Every case here would otherwise reach vLLM with a bad path, a half-written
export or an oversized adapter; the target is a closed port, so a check that
leaked through would show up as UNAVAILABLE instead of the expected status.
"""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from synthtune.grpc_client import open_channel
from synthtune.serving.v1 import serving_pb2 as pb
from synthtune.serving.v1 import serving_pb2_grpc
from tests.serving_proxy_svc.conftest import rpc_error, write_adapter


@pytest.fixture
def proxy(make_proxy, data_root, closed_url):
    (data_root / "adapters").mkdir()
    return make_proxy(data_root, vllm_url=closed_url)


def field_of(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        violation = error_details_pb2.BadRequest()
        if detail.Unpack(violation):
            return violation.field_violations[0].field
    return ""


@pytest.mark.parametrize("name", ["../x-v1", "/etc/passwd", "a/b-v1", "..", "x\\y-v1"])
def test_names_with_paths_are_invalid(proxy, name):
    for call in (lambda: proxy.load(name), lambda: proxy.compare("Hi", name), lambda: proxy.compare_batch(name)):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert field_of(error) == "adapter_name"
    error = rpc_error(proxy.unload, name)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == "served_name"


def test_a_symlink_out_of_adapters_is_invalid(proxy, data_root, tmp_path):
    outside = write_adapter(tmp_path / "elsewhere", "evil-v1")
    (data_root / "adapters" / "evil-v1").symlink_to(outside)
    error = rpc_error(proxy.load, "evil-v1")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "outside adapters/" in error.details()


def test_an_unknown_adapter_is_not_found(proxy):
    error = rpc_error(proxy.load, "nothing-v1")
    assert error.code() == grpc.StatusCode.NOT_FOUND and "nothing-v1" in error.details()
    assert rpc_error(proxy.compare, "Hi", "nothing-v1").code() == grpc.StatusCode.NOT_FOUND


def test_an_export_still_being_written_is_a_failed_precondition(proxy, data_root):
    # What trainer_svc.export has on disk mid-export: only the hidden temp folder.
    write_adapter(data_root / "adapters", ".export-faq-v1-k2j3h4", manifest=False)
    error = rpc_error(proxy.load, "faq-v1")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "still being exported" in error.details()
    error = rpc_error(proxy.load, ".export-faq-v1-k2j3h4")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "has not finished" in error.details()


def test_a_folder_without_manifest_or_weights_is_a_failed_precondition(proxy, data_root):
    write_adapter(data_root / "adapters", "nomanifest-v1", manifest=False)
    error = rpc_error(proxy.load, "nomanifest-v1")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not a finished export" in error.details() and "manifest.json" in error.details()
    write_adapter(data_root / "adapters", "noweights-v1", weights=False)
    error = rpc_error(proxy.load, "noweights-v1")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "adapter_model.safetensors" in error.details()
    folder = write_adapter(data_root / "adapters", "partial-v1")
    (folder / "adapter_config.json").unlink()
    error = rpc_error(proxy.load, "partial-v1")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "adapter_config.json" in error.details()


def test_a_renamed_or_unversioned_folder_is_refused(proxy, data_root):
    write_adapter(data_root / "adapters", "copy-v2", manifest={"name": "orig-v1"})
    error = rpc_error(proxy.load, "copy-v2")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "orig-v1" in error.details()
    write_adapter(data_root / "adapters", "latest")
    error = rpc_error(proxy.load, "latest")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "versioned" in error.details()


def test_a_rank_above_the_maximum_is_refused_before_vllm(proxy, data_root):
    write_adapter(data_root / "adapters", "big-v1", r=16)
    error = rpc_error(proxy.load, "big-v1")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "rank 16" in error.details() and "maximum of 8" in error.details()
    assert "--max-lora-rank" in error.details()
    # A per-module rank above the maximum counts too.
    folder = write_adapter(data_root / "adapters", "pattern-v1", r=8)
    config = (folder / "adapter_config.json")
    config.write_text(config.read_text().replace('"r": 8', '"r": 8, "rank_pattern": {"o_proj": 32}'))
    assert "rank 32" in rpc_error(proxy.load, "pattern-v1").details()


def test_targets_must_be_configured(proxy, data_root):
    write_adapter(data_root / "adapters", "ok-v1")
    for targets in (["http://169.254.169.254"], ["not a url"]):
        error = rpc_error(proxy.load, "ok-v1", targets=targets)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == "targets"
    error = rpc_error(proxy.compare, "Hi", "ok-v1", target="http://example.com:8000")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == "target"


def test_vllm_down_is_unavailable_naming_the_url(proxy, data_root, closed_url):
    write_adapter(data_root / "adapters", "ok-v1", eval_rows=[{"instruction": "a", "output": "b"}])
    for call in (lambda: proxy.load("ok-v1"), lambda: proxy.unload("ok-v1"), lambda: proxy.compare("Hi", "ok-v1"),
                 lambda: proxy.compare_batch("ok-v1")):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
        assert closed_url in error.details() and "unreachable" in error.details()
    listed = proxy.list().targets
    assert [(t.target, t.reachable) for t in listed] == [(closed_url, False)] and closed_url in listed[0].error


@pytest.mark.parametrize("token", ["é", "tok en", "tok\nen", "\x00", "🙂" * 3, "x" * 8193])
def test_a_token_that_cannot_be_a_header_is_invalid(proxy, data_root, token):
    # The gRPC fuzz found it: httpx refused to build the request to vLLM, and the caller got INTERNAL.
    write_adapter(data_root / "adapters", "ok-v1", eval_rows=[{"instruction": "a", "output": "b"}])
    for call in (lambda: proxy.load("ok-v1", token=token), lambda: proxy.unload("ok-v1", token=token),
                 lambda: proxy.list(token=token), lambda: proxy.compare("Hi", "ok-v1", token=token),
                 lambda: proxy.compare_batch("ok-v1", token=token)):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == "token", error.details()
        assert token not in error.details()
    judge = pb.Judge(base_url=f"{closed_url_of(proxy)}/v1", model="judge", token=token)
    error = rpc_error(proxy.compare_batch, "ok-v1", judge=judge)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == "judge.token", error.details()


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1/v1", "http://127.0.0.1:99999/v1", "http://h:-1"])
def test_a_judge_url_that_does_not_parse_is_invalid(proxy, data_root, url):
    # The gRPC fuzz found it: urlsplit's ValueError ("Invalid IPv6 URL") escaped as INTERNAL.
    write_adapter(data_root / "adapters", "ok-v1", eval_rows=[{"instruction": "a", "output": "b"}])
    error = rpc_error(proxy.compare_batch, "ok-v1", judge=pb.Judge(base_url=url, model="judge"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == "judge.base_url", error.details()


def closed_url_of(proxy) -> str:
    return proxy.settings.vllm_url


@pytest.mark.parametrize(("fields", "field"), [
    ({"sampling": pb.Sampling(temperature=-0.1)}, "sampling.temperature"),
    ({"sampling": pb.Sampling(temperature=2.5)}, "sampling.temperature"),
    ({"sampling": pb.Sampling(top_p=0)}, "sampling.top_p"),
    ({"sampling": pb.Sampling(max_tokens=0)}, "sampling.max_tokens"),
    ({"prompt": "   "}, "prompt"),
])
def test_bad_compare_requests_are_invalid(proxy, data_root, fields, field):
    write_adapter(data_root / "adapters", "ok-v1")
    request = {"prompt": "Hi", **fields}
    error = rpc_error(proxy.compare, request.pop("prompt"), "ok-v1", **request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == field


@pytest.mark.parametrize(("dataset_path", "code", "words"), [
    ("../outside.jsonl", grpc.StatusCode.INVALID_ARGUMENT, "'..'"),
    ("/etc/passwd", grpc.StatusCode.INVALID_ARGUMENT, "relative"),
    ("runs/x/events.jsonl", grpc.StatusCode.INVALID_ARGUMENT, "under datasets/ or adapters/"),
    # The data root itself: no first part to check, which was an IndexError, so INTERNAL (the gRPC fuzz).
    (".", grpc.StatusCode.INVALID_ARGUMENT, "under datasets/ or adapters/"),
    ("./", grpc.StatusCode.INVALID_ARGUMENT, "under datasets/ or adapters/"),
    ("datasets/missing.jsonl", grpc.StatusCode.NOT_FOUND, "does not exist"),
    ("datasets/bad.jsonl", grpc.StatusCode.INVALID_ARGUMENT, "line 2"),
    ("datasets/empty.jsonl", grpc.StatusCode.INVALID_ARGUMENT, "no rows"),
])
def test_bad_batch_datasets(proxy, data_root, dataset_path, code, words):
    write_adapter(data_root / "adapters", "ok-v1")
    (data_root / "datasets").mkdir()
    (data_root / "datasets" / "bad.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n')
    (data_root / "datasets" / "empty.jsonl").write_text("\n")
    error = rpc_error(proxy.compare_batch, "ok-v1", dataset_path=dataset_path)
    assert error.code() == code and words in error.details(), error.details()


def test_batch_without_an_eval_split_or_with_a_changed_one(proxy, data_root):
    write_adapter(data_root / "adapters", "none-v1")
    error = rpc_error(proxy.compare_batch, "none-v1")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "no held-out eval split" in error.details()
    folder = write_adapter(data_root / "adapters", "edited-v1", eval_rows=[{"instruction": "a", "output": "b"}])
    (folder / "eval.jsonl").write_text('{"instruction": "a", "output": "c"}\n')
    error = rpc_error(proxy.compare_batch, "edited-v1")
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "changed after the export" in error.details()
    error = rpc_error(proxy.compare_batch, "edited-v1", limit=100_000)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == "limit"


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
def test_calls_without_the_grpc_token_are_unauthenticated(proxy, token):
    channel = open_channel(proxy.address, token=token) if token else grpc.insecure_channel(proxy.address)
    stub = serving_pb2_grpc.ServingProxyServiceStub(channel)
    try:
        for call, request in ((stub.ListServedModels, pb.ListServedModelsRequest()),
                              (stub.LoadAdapter, pb.LoadAdapterRequest(adapter_name="x-v1"))):
            error = rpc_error(call, request, timeout=10)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        error = rpc_error(lambda: list(stub.CompareBatch(pb.CompareBatchRequest(adapter_name="x-v1"), timeout=10)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()
