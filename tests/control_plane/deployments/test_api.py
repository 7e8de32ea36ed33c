"""Serving REST API against the real serving proxy and real vLLM CPU servers: load, list,
compare, unload; every bad input and fault as a clear 4xx or 503 in the one error body, with
no half state left in the DB."""

from __future__ import annotations

import json
import uuid

import pytest

from control_plane.deployments.models import Comparison, Deployment
from tests.control_plane.deployments.conftest import spare_with, use_proxy
from tests.control_plane.deployments.helpers import (
    BASE_MODEL,
    BATCH,
    COMPARE,
    DEPLOYMENTS,
    SERVED,
    live_rows,
    load_url,
    unload_url,
)
from tests.control_plane.helpers import assert_error_body, jsonl
from tests.control_plane.runs.factories import AdapterFactory, RunFactory
from tests.support.procs import free_port

pytestmark = pytest.mark.django_db
slow = pytest.mark.slow  # starts or uses a real vLLM (and the session's trained adapter)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", load_url("a-v1")),
        ("post", unload_url("a-v1")),
        ("get", DEPLOYMENTS),
        ("get", f"{DEPLOYMENTS}1/"),
        ("post", f"{DEPLOYMENTS}1/unload/"),
        ("get", SERVED),
        ("post", COMPARE),
        ("post", BATCH),
        ("get", "/api/v1/comparisons/"),
    ],
)
def test_anonymous_calls_get_401_in_the_error_body(anonymous, method, url):
    assert_error_body(getattr(anonymous, method)(url, {}, format="json"), 401, "UNAUTHENTICATED")


def test_served_models_checks_targets_and_the_token_header_before_asking_the_proxy(api, cp_settings):
    # Nothing listens at the proxy's address: a 400 here came before any call to it.
    body = assert_error_body(api.get(SERVED, {"target": "ftp://vllm:8000"}), 400, "INVALID_ARGUMENT")
    assert "target" in json.dumps(body)
    many = [f"http://vllm-{n}:8000" for n in range(17)]
    assert_error_body(api.get(SERVED, {"target": many}), 400, "INVALID_ARGUMENT")
    assert_error_body(api.get(SERVED, HTTP_X_VLLM_TOKEN="tok\u00e9n"), 400, "INVALID_ARGUMENT")
    # No target (the filter serializer skipped) and an unknown parameter (ignored, as before): the proxy.
    for reply in (api.get(SERVED), api.get(SERVED, {"other": "1"})):
        assert cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR in assert_error_body(reply, 503, "UNAVAILABLE")["message"]


def test_a_listing_is_sent_with_every_field_of_its_dataclasses():
    from dataclasses import asdict

    from control_plane.deployments.proxy import ServedModel, TargetModels

    listing = TargetModels(target="http://vllm:8000", reachable=True, error="", models=[
        ServedModel(id="base", root="/models/base", parent="", adapter_name=""),
        ServedModel(id="a-v1", root="/adapters/a-v1", parent="base", adapter_name="a-v1"),
    ])
    assert listing.as_dict() == asdict(listing)  # a field added to either dataclass must reach the API


def test_openapi_schema_lists_the_serving_routes(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    paths = json.loads(schema.content)["paths"]
    assert {
        "/api/v1/adapters/{name}/load/",
        "/api/v1/adapters/{name}/unload/",
        "/api/v1/deployments/",
        "/api/v1/deployments/{deployment_id}/",
        "/api/v1/deployments/{deployment_id}/unload/",
        "/api/v1/served-models/",
        "/api/v1/compare/",
        "/api/v1/compare/batch/",
        "/api/v1/comparisons/",
    } <= set(paths)
    load = paths["/api/v1/adapters/{name}/load/"]["post"]
    assert load["operationId"] == "adapters_load" and {"201", "400", "404", "503"} <= set(load["responses"])
    batch = paths["/api/v1/compare/batch/"]["post"]["responses"]["200"]["content"]
    assert {"application/json", "text/event-stream"} <= set(batch)


# --- the whole way, against the real proxy and vLLM -------------------------------------------


@slow
def test_load_list_compare_and_unload(api, proxy, adapter, vllm_server):
    reply = api.post(load_url(adapter.name), {}, format="json")
    assert reply.status_code == 201, reply.content
    body = reply.json()
    [deployment] = body["deployments"]
    assert body["served_name"] == deployment["served_name"] and adapter.name in body["served_name"]
    assert deployment["state"] == "loaded" and deployment["target"] == vllm_server.url
    assert deployment["loaded_at"] and deployment["owner"]
    assert [r["ok"] for r in body["replicas"]] == [True]

    # vLLM really serves it, under the served name the deployment records.
    [target] = api.get(SERVED).json()["targets"]
    assert target["reachable"] and target["target"] == vllm_server.url
    served = {m["id"]: m for m in target["models"]}
    assert served[deployment["served_name"]]["adapter_name"] == adapter.name
    assert served[deployment["served_name"]]["parent"] == BASE_MODEL

    # Loading again is a success that keeps the one record.
    again = api.post(load_url(adapter.name), {}, format="json")
    assert again.status_code == 200 and again.json()["replicas"][0]["already_loaded"]
    assert [d["id"] for d in again.json()["deployments"]] == [deployment["id"]]
    listing = api.get(DEPLOYMENTS).json()
    assert listing["reconcile"]["ok"] and listing["count"] == 1
    assert listing["results"][0]["state"] == "loaded" and listing["results"][0]["checked_at"]

    compared = api.post(
        COMPARE, {"adapter": adapter.name, "prompt": "Say something about the sea, number 99."}, format="json"
    )
    assert compared.status_code == 200, compared.content
    result = compared.json()
    assert result["base"]["model"] == BASE_MODEL and result["adapter"]["model"] == deployment["served_name"]
    for side in (result["base"], result["adapter"]):
        assert side["latency_ms"] > 0 and side["prompt_tokens"] > 0 and side["completion_tokens"] > 0
        assert side["finish_reason"] in ("stop", "length")
    # Greedy on both sides: a different text can only come from the adapter's weights.
    assert result["base"]["text"] != result["adapter"]["text"]
    assert result["prompt_format"] == adapter.prompt_format
    stored = Comparison.objects.get(pk=result["comparison_id"])
    assert stored.kind == "one" and stored.result["adapter"]["text"] == result["adapter"]["text"]

    unloaded = api.post(f"{DEPLOYMENTS}{deployment['id']}/unload/", {}, format="json")
    assert unloaded.status_code == 200 and unloaded.json()["state"] == "unloaded"
    assert unloaded.json()["unloaded_at"]
    [target] = api.get(SERVED).json()["targets"]
    assert [m["id"] for m in target["models"]] == [BASE_MODEL]
    # Unloading what isn't loaded: 404, from the deployment and from the adapter.
    body = assert_error_body(api.post(f"{DEPLOYMENTS}{deployment['id']}/unload/"), 404, "NOT_FOUND")
    assert "unloaded" in body["message"]
    assert "not loaded" in assert_error_body(api.post(unload_url(adapter.name)), 404, "NOT_FOUND")["message"]


@slow
def test_a_token_is_passed_on_and_never_stored(api, proxy, adapter):
    secret = "vllm-secret-token-0123456789"
    reply = api.post(load_url(adapter.name), {"token": secret}, format="json")
    assert reply.status_code == 201, reply.content
    assert secret not in reply.content.decode()
    rows = Deployment.objects.values()
    assert rows and not any(secret in json.dumps(row, default=str) for row in rows)
    assert secret not in proxy.log_text()


@slow
def test_the_adapter_unload_route_unloads_every_deployment(api, proxy, adapter):
    assert api.post(load_url(adapter.name), {}, format="json").status_code == 201
    reply = api.post(unload_url(adapter.name), {}, format="json")
    assert reply.status_code == 200, reply.content
    assert [d["state"] for d in reply.json()["deployments"]] == ["unloaded"]
    assert not live_rows()


@slow
def test_compare_of_an_adapter_that_is_not_loaded_says_so(api, proxy, adapter):
    reply = api.post(COMPARE, {"adapter": adapter.name, "prompt": "Hi."}, format="json")
    assert reply.status_code in (400, 404), reply.content
    assert adapter.name in reply.json()["message"] and not Comparison.objects.exists()


@slow
def test_batch_compare_over_the_eval_split_as_json_and_as_a_stream(api, proxy, adapter):
    assert api.post(load_url(adapter.name), {}, format="json").status_code == 201
    request = {"adapter": adapter.name, "limit": 3, "sampling": {"max_tokens": 16}}

    reply = api.post(BATCH, request, format="json")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    held_out = [json.loads(line) for line in _eval_lines(adapter)]
    assert len(body["rows"]) == 3 and body["summary"]["rows"] == 3
    assert [row["reference"] for row in body["rows"]] == [row["output"] for row in held_out[:3]]
    for row in body["rows"]:
        assert row["base"]["text"] and row["adapter"]["text"] and 0 <= row["adapter_chrf"] <= 100
    for side in ("base", "adapter"):
        summary = body["summary"][side]
        assert 0 <= summary["exact_match_rate"] <= 1
        assert 0 < summary["latency_p50_ms"] <= summary["latency_p95_ms"]
    assert Comparison.objects.get(pk=body["comparison_id"]).summary == body["summary"]

    streamed = api.post(BATCH, request, format="json", HTTP_ACCEPT="text/event-stream")
    assert streamed.status_code == 200 and streamed["Content-Type"].startswith("text/event-stream")
    events = _sse(b"".join(streamed.streaming_content).decode())
    assert [kind for kind, _ in events] == ["row", "row", "row", "summary", "comparison"]
    assert [data["index"] for kind, data in events if kind == "row"] == [0, 1, 2]
    assert events[3][1]["rows"] == 3 and Comparison.objects.filter(kind="batch").count() == 2


@slow
def test_batch_compare_over_a_dataset(api, proxy, adapter, serving_root):
    from control_plane.datasets import services as dataset_services

    rows = [
        {"instruction": f"Count to {n}.", "output": " ".join(str(i) for i in range(1, n + 1))} for n in (2, 3)
    ]
    dataset = dataset_services.dataset_upload(
        owner=None, name=f"counting-{uuid.uuid4().hex[:8]}", data=jsonl(rows)
    )
    assert api.post(load_url(adapter.name), {}, format="json").status_code == 201
    reply = api.post(
        BATCH,
        {"adapter": adapter.name, "dataset": dataset.name, "sampling": {"max_tokens": 8}},
        format="json",
    )
    assert reply.status_code == 200, reply.content
    assert [row["reference"] for row in reply.json()["rows"]] == ["1 2", "1 2 3"]
    assert reply.json()["dataset"] == dataset.name
    missing = api.post(BATCH, {"adapter": adapter.name, "dataset": "no-such-data"}, format="json")
    assert assert_error_body(missing, 404, "NOT_FOUND")["extra"]["field"] == "dataset"


def _eval_lines(adapter) -> list[str]:
    from django.conf import settings

    path = settings.SYNTHTUNE_DATA_ROOT / adapter.path / adapter.manifest["eval_split"]["file"]
    return [line for line in path.read_text().splitlines() if line.strip()]


def _sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


# --- bad input and faults: a clear 4xx or 503, nothing half-written ---------------------------


@slow
def test_an_unknown_adapter_is_404(api, proxy):
    body = assert_error_body(api.post(load_url("nope-v1"), {}, format="json"), 404, "NOT_FOUND")
    assert "nope-v1" in body["message"] and not Deployment.objects.exists()
    assert_error_body(
        api.post(COMPARE, {"adapter": "nope-v1", "prompt": "Hi."}, format="json"), 404, "NOT_FOUND"
    )
    assert_error_body(api.post(unload_url("nope-v1")), 404, "NOT_FOUND")


@pytest.mark.parametrize("name", ["..", "../adapters/x-v1", "/etc/passwd", "a/../../b", "%2Fetc%2Fpasswd"])
def test_dot_dot_and_absolute_names_are_400(api, name):
    body = assert_error_body(api.post(load_url(name), {}, format="json"), 400, "INVALID_ARGUMENT")
    assert body["extra"]["field"] == "adapter" and not Deployment.objects.exists()
    assert_error_body(api.post(unload_url(name)), 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("name", ["../x-v1", "/etc/passwd"])
def test_dot_dot_and_absolute_names_in_a_comparison_are_400(api, name):
    body = assert_error_body(
        api.post(COMPARE, {"adapter": name, "prompt": "Hi."}, format="json"), 400, "INVALID_ARGUMENT"
    )
    assert body["extra"]["field"] == "adapter"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"targets": ["ftp://x:1"]}, "targets"),
        ({"targets": "http://x:1"}, "targets"),
        ({"targets": ["http://x:1/?a=b"]}, "targets"),
    ],
)
def test_bad_targets_are_400_naming_the_field(api, body, field):
    adapter = AdapterFactory()
    reply = assert_error_body(api.post(load_url(adapter.name), body, format="json"), 400, "INVALID_ARGUMENT")
    assert reply["extra"]["field"].startswith(field) and not Deployment.objects.exists()


@pytest.mark.parametrize(
    ("sampling", "field"),
    [({"temperature": -1}, "sampling.temperature"), ({"max_tokens": 0}, "sampling.max_tokens"),
     ({"top_p": 0}, "sampling.top_p")],
)  # fmt: skip
def test_bad_sampling_is_400_naming_the_field(api, sampling, field):
    body = {"adapter": AdapterFactory().name, "prompt": "Hi.", "sampling": sampling}
    assert (
        assert_error_body(api.post(COMPARE, body, format="json"), 400, "INVALID_ARGUMENT")["extra"]["field"]
        == field
    )


@slow
def test_a_rank_above_the_servers_maximum_is_400_failed_precondition(api, proxy, rank16):
    rank16.record()
    body = assert_error_body(api.post(load_url(rank16.name), {}, format="json"), 400, "FAILED_PRECONDITION")
    assert "16" in body["message"] and "8" in body["message"], body
    assert not Deployment.objects.exists()


@slow
def test_an_adapter_of_another_base_model_is_400_failed_precondition(api, proxy, other_base):
    other_base.record()
    body = assert_error_body(
        api.post(load_url(other_base.name), {}, format="json"), 400, "FAILED_PRECONDITION"
    )
    assert "tiny-llama" in body["message"] and BASE_MODEL in body["message"], body
    assert not Deployment.objects.exists()


@slow
def test_a_vllm_without_the_runtime_lora_flag_is_400_failed_precondition(
    api, cp_settings, proxies, adapter, spare_vllm
):
    spare_with(spare_vllm, runtime_lora=False)
    use_proxy(cp_settings, proxies, spare_vllm.url)
    body = assert_error_body(api.post(load_url(adapter.name), {}, format="json"), 400, "FAILED_PRECONDITION")
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" in body["message"], body
    assert not Deployment.objects.exists()


@slow
def test_a_vllm_that_is_down_is_503_naming_its_url(api, cp_settings, proxies, adapter):
    dead = f"http://127.0.0.1:{free_port()}"
    use_proxy(cp_settings, proxies, dead)
    body = assert_error_body(api.post(load_url(adapter.name), {}, format="json"), 503, "UNAVAILABLE")
    assert dead in body["message"] and not Deployment.objects.exists()
    body = assert_error_body(
        api.post(COMPARE, {"adapter": adapter.name, "prompt": "Hi."}, format="json"), 503, "UNAVAILABLE"
    )
    assert dead in body["message"]
    [target] = api.get(SERVED).json()["targets"]
    assert target["target"] == dead and not target["reachable"] and target["error"]


@slow
def test_the_proxy_down_is_503_naming_its_address(api, cp_settings, adapter):
    address = cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR  # nothing listens there (proxy_down)
    for reply in (
        api.post(load_url(adapter.name), {}, format="json"),
        api.post(COMPARE, {"adapter": adapter.name, "prompt": "Hi."}, format="json"),
        api.get(SERVED),
    ):
        assert address in assert_error_body(reply, 503, "UNAVAILABLE")["message"]
    assert not Deployment.objects.exists()
    listing = api.get(DEPLOYMENTS).json()  # stored states, and the reason they are not checked
    assert listing["count"] == 0


@slow
def test_a_load_that_fails_on_one_replica_records_only_the_truth(
    api, cp_settings, proxies, adapter, vllm_server
):
    dead = f"http://127.0.0.1:{free_port()}"
    service = use_proxy(cp_settings, proxies, vllm_server.url, replicas=(vllm_server.url, dead))
    try:
        reply = api.post(load_url(adapter.name), {}, format="json")
        assert reply.status_code == 201, reply.content
        by_target = {d["target"]: d for d in reply.json()["deployments"]}
        assert by_target[vllm_server.url]["state"] == "loaded"
        assert by_target[dead]["state"] == "failed" and dead in by_target[dead]["error"]
        assert [d.target for d in live_rows()] == [vllm_server.url]
    finally:
        from tests.control_plane.deployments.conftest import unload_everything

        unload_everything(service.address, vllm_server.url)


@slow
def test_loading_an_adapter_whose_export_has_not_finished_is_404_saying_so(api, proxy):
    run = RunFactory(state="running", adapter_name="support", base_model=BASE_MODEL)
    body = assert_error_body(api.post(load_url("support-v1"), {}, format="json"), 404, "NOT_FOUND")
    assert "not finished" in body["message"] and run.run_id in body["message"], body
    default_stem = RunFactory(state="queued", adapter_name="", base_model="org/Tiny-Model")
    body = assert_error_body(api.post(load_url("Tiny-Model-lora-v3"), {}, format="json"), 404, "NOT_FOUND")
    assert default_stem.run_id in body["message"]
    # The trainer's temporary folder of an export under way is not an adapter.
    body = assert_error_body(
        api.post(load_url(".export-support-v1-x1y2"), {}, format="json"), 400, "INVALID_ARGUMENT"
    )
    assert "still being written" in body["message"]
    assert not Deployment.objects.exists()


@slow
def test_a_restarted_vllm_shows_its_deployments_as_lost(api, cp_settings, proxies, adapter, spare_vllm):
    from control_plane.deployments.worker import ReconcileFollower

    spare_with(spare_vllm, runtime_lora=True)
    use_proxy(cp_settings, proxies, spare_vllm.url)
    loaded = api.post(load_url(adapter.name), {}, format="json")
    assert loaded.status_code == 201, loaded.content
    [deployment] = loaded.json()["deployments"]

    spare_vllm.restart()  # runtime-loaded adapters are gone

    # The worker's periodic check finds out without anyone looking...
    ReconcileFollower().follow("reconcile")
    row = Deployment.objects.get(pk=deployment["id"])
    assert row.state == "lost" and "restart" in row.error
    # ...and the API shows the truth.
    [listed] = api.get(DEPLOYMENTS).json()["results"]
    assert listed["state"] == "lost" and spare_vllm.url in listed["error"]
    assert api.get(f"{DEPLOYMENTS}{deployment['id']}/").json()["state"] == "lost"
    assert_error_body(api.post(f"{DEPLOYMENTS}{deployment['id']}/unload/"), 404, "NOT_FOUND")
    compared = api.post(COMPARE, {"adapter": adapter.name, "prompt": "Hi."}, format="json")
    assert compared.status_code in (400, 404), compared.content

    # Loading again gives a new live deployment; the lost one stays as history.
    again = api.post(load_url(adapter.name), {}, format="json")
    assert again.status_code == 201, again.content
    states = dict(Deployment.objects.values_list("pk", "state"))
    assert states[deployment["id"]] == "lost" and sorted(states.values()) == ["loaded", "lost"]
