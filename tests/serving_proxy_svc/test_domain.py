"""The proxy's pure parts: base-model matching, request bodies as training formatted them, and the scores."""

from __future__ import annotations

import pytest

from serving_proxy_svc.adapters import adapter_name_for_root, adapter_rank
from serving_proxy_svc.compare import (
    Sampling,
    chrf,
    exact_match,
    percentile,
    row_request,
    sampling_params,
    summarize,
)
from serving_proxy_svc.proxy import base_model_matches
from serving_proxy_svc.vllm_client import ModelCard
from synthtune.errors import FailedPrecondition, InvalidArgument
from synthtune.prompt_format import instruction_prompt, training_example


@pytest.mark.parametrize(("base_id", "card", "matches"), [
    ("tiny-phi3", ModelCard("tiny-phi3", "/work/var/models/tiny-phi3", ""), True),  # local tiny model
    ("tiny-llama", ModelCard("tiny-phi3", "/work/var/models/tiny-phi3", ""), False),
    ("microsoft/Phi-3-mini-4k-instruct", ModelCard("phi3", "microsoft/Phi-3-mini-4k-instruct", ""), True),
    ("microsoft/Phi-3-mini-4k-instruct", ModelCard("microsoft/Phi-3-mini-4k-instruct", "/m/x", ""), True),
    ("microsoft/Phi-3-mini-4k-instruct", ModelCard("phi3", "/models/Phi-3-mini-4k-instruct", ""), True),
    ("microsoft/Phi-3-mini-4k-instruct",
     ModelCard("phi3", "/root/.cache/huggingface/hub/models--microsoft--Phi-3-mini-4k-instruct/snapshots/abc", ""),
     True),
    ("microsoft/Phi-3-mini-4k-instruct", ModelCard("llama", "meta-llama/Llama-3.2-1B", ""), False),
])
def test_base_model_matching(base_id, card, matches):
    assert base_model_matches(base_id, card) is matches


def test_adapter_names_are_read_back_from_vllm_roots():
    assert adapter_name_for_root("/data/adapters/faq-v3", "/data/adapters") == "faq-v3"
    assert adapter_name_for_root("/data/adapters/faq-v3/", "/data/adapters/") == "faq-v3"
    assert adapter_name_for_root("/elsewhere/faq-v3", "/data/adapters") == ""
    assert adapter_name_for_root("/data/adapters/a/b", "/data/adapters") == ""
    assert adapter_name_for_root("/data/adapters-old/faq-v3", "/data/adapters") == ""


def test_rank_is_the_largest_of_r_and_the_rank_pattern():
    assert adapter_rank({"r": 8}) == 8
    assert adapter_rank({"r": 8, "rank_pattern": {"o_proj": 16, "qkv_proj": 4}}) == 16
    with pytest.raises(FailedPrecondition):
        adapter_rank({"r": 0})
    with pytest.raises(FailedPrecondition):
        adapter_rank({})


def test_rows_are_sent_as_training_formatted_them():
    row = {"instruction": "Summarise.", "input": "A long text.", "system": "Be brief.", "output": "Short."}
    instruction = row_request(row, "instruction")
    assert instruction.route == "/v1/completions"
    assert instruction.body == {"prompt": instruction_prompt("Summarise.", input_text="A long text.",
                                                             system="Be brief.")}
    assert instruction.body["prompt"] == training_example(row, "instruction")["prompt"]
    assert (instruction.prompt, instruction.reference) == ("Summarise.\n\nA long text.", "Short.")

    chat = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
                         {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"},
                         {"role": "assistant", "content": "A2"}]}
    request = row_request(chat, "chat")
    assert request.route == "/v1/chat/completions"
    assert request.body == {"messages": chat["messages"][:-1]}  # the whole conversation up to the answer
    assert (request.prompt, request.reference) == ("U2", "A2")
    as_chat = row_request(row, "chat")
    assert as_chat.body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_sampling_defaults_and_pass_through():
    assert sampling_params(Sampling(), default_max_tokens=256) == {"temperature": 0.0, "max_tokens": 256}
    assert sampling_params(Sampling(temperature=0.7, top_p=0.9, max_tokens=5, seed=0), default_max_tokens=256) == {
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 5, "seed": 0}
    with pytest.raises(InvalidArgument) as info:
        sampling_params(Sampling(temperature=float("nan")), default_max_tokens=1)
    assert info.value.field == "sampling.temperature"


def test_scores():
    assert exact_match(" The answer.\n", "The answer.") and not exact_match("The answer", "The answer.")
    assert chrf("The blue heron waits.", "The blue heron waits.") == 100.0
    assert 0 < chrf("The blue heron.", "The blue heron waits.") < 100 and chrf("", "x") == 0.0
    assert percentile([], 50) == 0.0 and percentile([5], 95) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    side = summarize(exact=[True, False, False], chrfs=[100.0, 50.0, 0.0], latencies_ms=[10.0, 30.0],
                     finish_reasons=["stop", "length"], rows=3)
    assert side.exact_match_rate == pytest.approx(1 / 3) and side.chrf == 50.0
    assert side.latency_p50_ms == 20.0 and side.stop_rate == pytest.approx(1 / 3)
