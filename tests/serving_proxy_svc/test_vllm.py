"""The proxy against the real vLLM CPU server (the session `vllm_server`: tiny-phi3, runtime LoRA on).

Adapters are real exports (trainer_svc.export) with untrained LoRA weights:
enough for vLLM to load them and answer, not to answer well.
"""

from __future__ import annotations

import grpc
import pytest

from tests.serving_proxy_svc.conftest import rpc_error

pytestmark = pytest.mark.slow


@pytest.fixture
def proxy(make_proxy, serving_root, vllm_server):
    return make_proxy(serving_root, vllm_url=vllm_server.url)


def models_of(proxy, target: str) -> dict[str, object]:
    [listed] = [t for t in proxy.list().targets if t.target == target]
    assert listed.reachable, listed.error
    return {m.id: m for m in listed.models}


def test_load_list_compare_reload_unload(proxy, vllm_server, serving_root, adapter_factory, unique_stem):
    name = adapter_factory.export(serving_root, unique_stem)
    path = f"{(serving_root / 'adapters').resolve()}/{name}"

    loaded = proxy.load(name)
    assert loaded.served_name == name
    [replica] = loaded.replicas
    assert (replica.target, replica.ok, replica.served_name, replica.already_loaded) == (vllm_server.url, True, name,
                                                                                       False)
    served = models_of(proxy, vllm_server.url)
    assert served["tiny-phi3"].parent == "" and served["tiny-phi3"].adapter_name == ""
    card = served[name]
    assert (card.root, card.parent, card.adapter_name) == (path, "tiny-phi3", name)

    reply = proxy.compare("Name a colour.", name, sampling={"max_tokens": 8})
    assert reply.prompt_format == "chat"
    assert (reply.base.model, reply.adapter.model) == ("tiny-phi3", name)
    for side in (reply.base, reply.adapter):
        assert side.prompt_tokens > 0 and 0 < side.completion_tokens <= 8 and side.latency_ms > 0
        assert side.finish_reason in ("stop", "length")
    # Random LoRA weights really change the model's answer.
    assert reply.base.text != reply.adapter.text

    again = proxy.load(name)  # same name, same path: nothing to do
    assert again.replicas[0].ok and again.replicas[0].already_loaded

    unloaded = proxy.unload(name)
    assert [(r.target, r.ok) for r in unloaded.replicas] == [(vllm_server.url, True)]
    assert name not in models_of(proxy, vllm_server.url)
    assert (serving_root / "adapters" / name / "manifest.json").is_file()  # unloading never deletes the folder

    error = rpc_error(proxy.unload, name)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "not loaded" in error.details()
    error = rpc_error(proxy.compare, "Hi", name)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "not loaded" in error.details()


def test_a_name_loaded_from_another_folder_is_already_exists(proxy, make_proxy, vllm_server, serving_root,
                                                              tmp_path, adapter_factory, unique_stem):
    name = adapter_factory.export(serving_root, unique_stem)
    proxy.load(name)
    other_root = tmp_path / "other-data"
    assert adapter_factory.export(other_root, unique_stem) == name  # same versioned name, other folder
    other = make_proxy(other_root, vllm_url=vllm_server.url)
    error = rpc_error(other.load, name)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert str(serving_root.resolve()) in error.details() and "never reused" in error.details()
    # Comparing through the other data root would use the wrong manifest: refused too.
    error = rpc_error(other.compare, "Hi", name, served_name=name)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_unloading_something_never_loaded_is_not_found(proxy):
    error = rpc_error(proxy.unload, "never-loaded-v1")
    assert error.code() == grpc.StatusCode.NOT_FOUND and "never-loaded-v1" in error.details()


def test_a_base_model_mismatch_is_refused(proxy, vllm_server, serving_root, adapter_factory, unique_stem):
    name = adapter_factory.export(serving_root, unique_stem, model="tiny-llama")
    error = rpc_error(proxy.load, name)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "trained on 'tiny-llama'" in error.details() and "'tiny-phi3'" in error.details()
    assert name not in models_of(proxy, vllm_server.url)


def test_vllms_own_refusals_map_to_failed_precondition(make_proxy, vllm_server, serving_root, adapter_factory,
                                                      unique_stem):
    # A proxy told the wrong --max-lora-rank lets an r=16 adapter through; vLLM's 500 is reported with its reason.
    name = adapter_factory.export(serving_root, unique_stem, r=16)
    misconfigured = make_proxy(serving_root, vllm_url=vllm_server.url, vllm_max_lora_rank=16)
    error = rpc_error(misconfigured.load, name)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "greater than max_lora_rank 8" in error.details(), error.details()
    # The server is still healthy and serves nothing new.
    assert name not in models_of(misconfigured, vllm_server.url)


def test_weights_of_another_base_are_refused_by_vllm(proxy, vllm_server, serving_root, adapter_factory, unique_stem):
    # A manifest that lies about its base passes the proxy's check; vLLM's 500 comes back with its reason.
    name = adapter_factory.export(serving_root, unique_stem, model="tiny-llama")
    for file in ("manifest.json", "adapter_config.json"):
        path = serving_root / "adapters" / name / file
        path.write_text(path.read_text().replace('"tiny-llama"', '"tiny-phi3"'))
    error = rpc_error(proxy.load, name)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "could not load adapter" in error.details() and "target modules" in error.details()
    assert name not in models_of(proxy, vllm_server.url)


def test_a_wrong_vllm_adapter_root_is_not_found_naming_the_setting(make_proxy, vllm_server, serving_root,
                                                                  adapter_factory, unique_stem):
    name = adapter_factory.export(serving_root, unique_stem)
    proxy = make_proxy(serving_root, vllm_url=vllm_server.url, vllm_adapter_root="/models-pvc/adapters")
    error = rpc_error(proxy.load, name)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert f"/models-pvc/adapters/{name}" in error.details() and "SYNTHTUNE_VLLM_ADAPTER_ROOT" in error.details()


def test_each_replica_gets_its_own_result(make_proxy, vllm_server, serving_root, closed_url, adapter_factory,
                                          unique_stem):
    name = adapter_factory.export(serving_root, unique_stem)
    proxy = make_proxy(serving_root, vllm_url=vllm_server.url, vllm_replicas=f"{vllm_server.url},{closed_url}")
    loaded = proxy.load(name)
    results = {r.target: r for r in loaded.replicas}
    assert results[vllm_server.url].ok and results[vllm_server.url].code == ""
    down = results[closed_url]
    assert not down.ok and down.code == "UNAVAILABLE" and closed_url in down.message
    listed = {t.target: t for t in proxy.list().targets}
    assert listed[vllm_server.url].reachable and not listed[closed_url].reachable
    unloaded = {r.target: r for r in proxy.unload(name).replicas}
    assert unloaded[vllm_server.url].ok and unloaded[closed_url].code == "UNAVAILABLE"
    # Every replica failing fails the call, with the replicas' code.
    error = rpc_error(proxy.unload, name)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "every replica" in error.details()


def test_batch_compare_over_the_eval_split(proxy, vllm_server, serving_root, adapter_factory, unique_stem):
    rows = [{"instruction": "Name a colour.", "output": "Blue."},
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                          {"role": "assistant", "content": "Hello."}]},
            {"instruction": "word " * 600, "output": "Too long for --max-model-len 512."}]
    name = adapter_factory.export(serving_root, unique_stem, eval_rows=rows)
    proxy.load(name)
    events = proxy.compare_batch(name, sampling={"max_tokens": 6})
    kinds = [e.WhichOneof("kind") for e in events]
    assert kinds == ["row", "row", "row", "summary"]
    first, second, long_row = (e.row for e in events[:3])
    assert (first.prompt, first.reference) == ("Name a colour.", "Blue.")
    assert (second.prompt, second.reference) == ("Hi?", "Hello.")
    for row in (first, second):
        assert row.error == "" and row.base.model == "tiny-phi3" and row.adapter.model == name
        assert row.adapter.completion_tokens <= 6 and 0 <= row.adapter_chrf <= 100
    assert long_row.error and "512" in long_row.error  # vLLM's own reason, the batch carried on
    summary = events[-1].summary
    assert (summary.rows, summary.failed_rows, summary.prompt_format) == (3, 1, "chat")
    assert summary.dataset_path == f"adapters/{name}/eval.jsonl"
    assert summary.adapter.exact_match_rate == 0.0 and summary.adapter.latency_p50_ms > 0
