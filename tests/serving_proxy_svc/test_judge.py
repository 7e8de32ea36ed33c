"""The comparison judge against fakes: both orders asked, verdicts combined, every fault a
'no verdict' with its reason (never a win), a dead judge ending the batch with a clear summary,
the judge's token kept to the judge; and the pure parts (parsing, Wilson interval).

Two fake endpoints: one plays vLLM (base and adapter answer differently), one plays the judge,
answering by the row's instruction so concurrent requests get deterministic replies.
"""

from __future__ import annotations

import json
import logging
import re
import time

import grpc
import pytest

from serving_proxy_svc.judge import (
    NoVerdict,
    PairVerdict,
    combine,
    parse_pairwise,
    parse_score,
    wilson_interval,
)
from synthtune.serving.v1 import serving_pb2 as pb
from tests.serving_proxy_svc.conftest import rpc_error, write_adapter
from tests.support.fake_openai import FakeOpenAI, Hang, Status

ADAPTER = "judged-v1"
GOOD, BAD = "The right answer.", "dunno"
JUDGE_TOKEN = "judge-secret-token-789"
VLLM_TOKEN = "vllm-secret-token-123"
_TAG = re.compile(r"<(instruction|answer_a|answer_b|answer)>\n(.*?)\n</\1>", re.S)


def _parts(body: dict) -> dict[str, str]:
    return dict(_TAG.findall(body["messages"][0]["content"]))


def judge_reply(body: dict):
    """The fake judge: what it answers depends on the row's instruction."""
    parts = _parts(body)
    instruction = parts["instruction"]
    if "answer" in parts:  # single-answer mode: the adapter's answer is the good one
        return json.dumps({"score": 5 if parts["answer"] == GOOD else 2, "reason": "graded"})
    adapter_is = "A" if parts["answer_a"] == GOOD else "B"
    base_is = "B" if adapter_is == "A" else "A"
    match instruction:
        case "win" | "win again":
            return json.dumps({"winner": adapter_is, "reason": "the adapter's answer is right"})
        case "loss":
            return json.dumps({"winner": base_is, "reason": "the base answer is better"})
        case "tie":
            return json.dumps({"winner": "tie", "reason": "equally good"})
        case "biased":  # always the first answer shown: the two orders disagree
            return json.dumps({"winner": "A", "reason": "A reads better"})
        case "garbage":
            return "lorem ipsum dolor sit amet"
        case "refuse":
            return "I'm sorry, but I can't judge which answer is better."
        case "hang":
            return Hang()
        case "busy":
            return Status(429, retry_after="0", message="rate limited")
        case "prose":  # plain text with the verdict after some reasoning
            return f"Answer {adapter_is} is correct and complete. Winner: {adapter_is}"
    raise AssertionError(f"unexpected instruction {instruction!r}")


@pytest.fixture
def vllm(data_root):
    adapters = data_root / "adapters"
    adapters.mkdir()
    cards = [{"id": "fake-model", "root": "/models/fake-model"},
             {"id": ADAPTER, "root": f"{adapters.resolve()}/{ADAPTER}", "parent": "fake-model"}]
    answers = lambda body: GOOD if body["model"] == ADAPTER else BAD  # noqa: E731
    with FakeOpenAI(models=cards, respond=answers) as endpoint:
        yield endpoint


@pytest.fixture
def judge():
    with FakeOpenAI(model="judge-model", models=[{"id": "judge-model"}], respond=judge_reply) as endpoint:
        yield endpoint


@pytest.fixture
def proxy(make_proxy, data_root, vllm):
    def rows(*instructions):
        path = data_root / "datasets" / "rows.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(json.dumps({"instruction": i, "output": GOOD}) + "\n" for i in instructions))
        return "datasets/rows.jsonl"

    write_adapter(data_root / "adapters", ADAPTER, base="fake-model")
    started = make_proxy(data_root, vllm_url=vllm.base_url, vllm_token=VLLM_TOKEN)
    started.rows = rows
    return started


def spec(judge: FakeOpenAI, **fields) -> pb.Judge:
    # Generous: the fake answers at once, but a loaded machine must not turn answers into timeouts.
    fields = {"model": "judge-model", "token": JUDGE_TOKEN, "request_timeout_s": 10, "max_retries": 1, **fields}
    return pb.Judge(base_url=judge.base_url, **fields)


def run(proxy, judge_spec: pb.Judge, *instructions: str) -> tuple[list[pb.CompareRow], pb.JudgeSummary]:
    events = proxy.compare_batch(ADAPTER, dataset_path=proxy.rows(*instructions), judge=judge_spec)
    rows = [e.row for e in events if e.WhichOneof("kind") == "row"]
    assert events[-1].WhichOneof("kind") == "summary"
    return rows, events[-1].summary.judge


def test_each_pair_is_judged_in_both_orders_and_combined(proxy, judge):
    rows, summary = run(proxy, spec(judge), "win", "loss", "tie", "biased", "win again", "prose")
    assert [r.index for r in rows] == list(range(6))  # file order, though judged concurrently
    assert [r.judgement.outcome for r in rows] == ["win", "loss", "tie", "tie", "win", "win"]
    assert [r.judgement.inconsistent for r in rows] == [False, False, False, True, False, False]
    for row in rows:
        first, second = row.judgement.verdicts
        assert (first.first, second.first) == ("base", "adapter") and not first.error and not second.error
    assert [v.winner for v in rows[3].judgement.verdicts] == ["base", "adapter"]  # "A" both times
    assert rows[0].judgement.verdicts[0].reason == "the adapter's answer is right"
    # Both orders were asked, with the answers swapped: every pair shows up once each way.
    shown = [(p["instruction"], p["answer_a"]) for p in (_parts(r.body) for r in judge.chat_requests())]
    for instruction in ("win", "loss", "tie", "biased", "win again", "prose"):
        assert sorted(a for i, a in shown if i == instruction) == sorted([GOOD, BAD])
    # The judge's request: structured output, greedy, the reference shown.
    body = judge.chat_requests()[0].body
    assert body["response_format"]["json_schema"]["name"] == "pairwise_verdict" and body["temperature"] == 0
    assert f"<reference_answer>\n{GOOD}\n</reference_answer>" in body["messages"][0]["content"]
    assert (summary.wins, summary.ties, summary.losses, summary.no_verdict, summary.inconsistent) == (3, 2, 1, 0, 1)
    assert summary.win_rate == pytest.approx(0.5) and summary.tie_rate == pytest.approx(1 / 3)
    assert (summary.win_rate_low, summary.win_rate_high) == pytest.approx(wilson_interval(3, 6))
    assert summary.model == "judge-model" and summary.mode == "pairwise" and summary.error == ""
    assert summary.prompt_tokens == 7 * 12  # the fake's usage, every call counted


def test_judge_faults_are_no_verdict_with_a_reason_never_a_win(proxy, judge, vllm):
    vllm.respond = lambda body: (Status(400, message="maximum context length is 512")
                                 if body["messages"][-1]["content"] == "too long"
                                 else GOOD if body["model"] == ADAPTER else BAD)
    started = time.monotonic()
    rows, summary = run(proxy, spec(judge, request_timeout_s=1), "garbage", "refuse", "hang", "busy", "too long",
                        "win")
    outcomes = {r.prompt: r.judgement for r in rows}
    assert {name: j.outcome for name, j in outcomes.items()} == {
        "garbage": "no_verdict", "refuse": "no_verdict", "hang": "no_verdict", "busy": "no_verdict",
        "too long": "no_verdict", "win": "win"}
    # A row vLLM refused has no answers to judge: the judge is not asked about it.
    assert outcomes["too long"].reason.startswith("not judged: the row could not be compared (")
    assert not outcomes["too long"].verdicts and "too long" not in [_parts(r.body)["instruction"]
                                                                   for r in judge.chat_requests()]
    assert "held no verdict" in outcomes["garbage"].reason and "asked twice" in outcomes["garbage"].reason
    assert "declined to judge" in outcomes["refuse"].reason
    assert "did not answer within 1s" in outcomes["hang"].reason
    assert "HTTP 429" in outcomes["busy"].reason and "gave up after 2 attempts" in outcomes["busy"].reason
    for name in ("garbage", "refuse", "hang", "busy"):
        assert all(v.winner == "" and v.error for v in outcomes[name].verdicts), name
    # Only rows with a verdict count towards the rates.
    assert (summary.wins, summary.no_verdict, summary.win_rate) == (1, 5, 1.0)
    assert summary.win_rate_low == pytest.approx(wilson_interval(1, 1)[0])
    assert time.monotonic() - started < 15


def test_a_judge_that_fails_every_request_ends_with_a_clear_summary(proxy, judge):
    judge.respond = lambda body: Status(503, message="judge overloaded")
    started = time.monotonic()
    rows, summary = run(proxy, spec(judge, concurrency=1), *["win"] * 6)
    assert summary.no_verdict == 6 and summary.wins == 0 and (summary.win_rate_low, summary.win_rate_high) == (0, 1)
    assert summary.error.startswith("the judge gave no verdict on any of 6 rows: ")
    # After a few failures in a row it is no longer asked: later rows say why, at once.
    assert "not asked" in rows[-1].judgement.reason and "judge overloaded" in rows[-1].judgement.reason
    assert len(judge.chat_requests()) < 6 * 2 * 2
    assert time.monotonic() - started < 15


def test_a_judge_that_is_down_or_misnamed_fails_before_the_first_row(proxy, judge, closed_url):
    error = rpc_error(proxy.compare_batch, ADAPTER, dataset_path=proxy.rows("win"),
                      judge=pb.Judge(base_url=closed_url + "/v1", model="judge-model"))
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "judge" in error.details() and closed_url in error.details()
    error = rpc_error(proxy.compare_batch, ADAPTER, dataset_path=proxy.rows("win"), judge=spec(judge, model="nope"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not serve 'nope'" in error.details()
    for bad, words in ((spec(judge, mode="best-of"), "judge.mode"), (pb.Judge(base_url="ftp://x", model="m"),
                                                                      "judge.base_url")):
        error = rpc_error(proxy.compare_batch, ADAPTER, dataset_path=proxy.rows("win"), judge=bad)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and words in error.details()
    assert judge.chat_requests() == []


def test_single_mode_scores_each_side_against_the_reference(proxy, judge):
    rows, summary = run(proxy, spec(judge, mode="both"), "win", "biased")
    assert [(r.judgement.base_score.score, r.judgement.adapter_score.score) for r in rows] == [(2, 5), (2, 5)]
    assert rows[0].judgement.outcome == "win" and summary.mode == "both"
    assert (summary.base_score_mean, summary.adapter_score_mean, summary.adapter_scored) == (2.0, 5.0, 2)
    only, single = run(proxy, spec(judge, mode="single"), "win")
    assert only[0].judgement.outcome == "" and not only[0].judgement.verdicts and single.adapter_score_mean == 5


def test_the_judge_token_goes_to_the_judge_only_and_is_never_logged(proxy, judge, vllm, caplog):
    caplog.set_level(logging.DEBUG)
    judge.respond = lambda body: Status(500, message=f"token {JUDGE_TOKEN} is not valid here")
    rows, _ = run(proxy, spec(judge, max_retries=0), "win")
    assert {r.headers.get("Authorization") for r in judge.chat_requests()} == {f"Bearer {JUDGE_TOKEN}"}
    assert all(JUDGE_TOKEN not in json.dumps(r.headers) for r in vllm.requests)
    # A judge that echoes the token: the reason shown and stored has it masked.
    assert JUDGE_TOKEN not in rows[0].judgement.reason and "[REDACTED]" in rows[0].judgement.reason
    assert not [r for r in caplog.records if JUDGE_TOKEN in str(r.__dict__)]
    # No judge token: another URL gets none, never the vLLM token...
    judge.requests.clear()
    judge.respond = judge_reply
    run(proxy, spec(judge, token=""), "win")
    assert {r.headers.get("Authorization") for r in judge.chat_requests()} == {None}
    # ...but the proxy's own vLLM, as the judge, gets the vLLM token it already trusts.
    vllm.requests.clear()
    vllm.respond = lambda body: (judge_reply(body) if "<answer_a>" in str(body["messages"])
                                 else GOOD if body["model"] == ADAPTER else BAD)
    own = pb.Judge(base_url=vllm.base_url, model="fake-model", request_timeout_s=2)
    rows, summary = run(proxy, own, "win")
    judged = [r for r in vllm.chat_requests() if "<answer_a>" in str(r.body["messages"])]
    assert len(judged) == 2 and {r.headers.get("Authorization") for r in judged} == {f"Bearer {VLLM_TOKEN}"}
    assert summary.wins == 1


@pytest.mark.slow
def test_the_local_vllm_judges_both_orders_and_its_verdicts_parse(proxy, smollm2_vllm):
    """SmolLM2 on the real vLLM as the judge (the sides still come from the fake): structured
    output holds even a 135M model to {"winner", "reason"}, in both orders, on every row. (It
    tends to answer "A" whatever it is shown: both orders are what turns that into ties.)"""
    judge_spec = pb.Judge(base_url=smollm2_vllm.base_url, model=smollm2_vllm.model, request_timeout_s=120,
                          max_tokens=16)  # the winner comes first in the schema: a cut-off reason is fine
    rows, summary = run(proxy, judge_spec, "What is the capital of France?", "Name a yellow fruit.")
    for row in rows:
        assert [v.first for v in row.judgement.verdicts] == ["base", "adapter"]
        for verdict in row.judgement.verdicts:
            assert verdict.winner in ("base", "adapter", "tie") and verdict.error == "", verdict
        assert row.judgement.outcome in ("win", "loss", "tie")
        assert row.judgement.inconsistent == (row.judgement.verdicts[0].winner != row.judgement.verdicts[1].winner)
    assert summary.no_verdict == 0 and summary.wins + summary.ties + summary.losses == 2
    assert summary.prompt_tokens > 0 and summary.completion_tokens > 0 and summary.error == ""


# -- the pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "winner"), [
    ('{"winner": "B", "reason": "B is right"}', "B"),
    ('```json\n{"winner": "Answer A", "reason": "x"}\n```', "A"),
    ('{"winner": "tie", "reason": "same"}', "tie"),
    ('{"winner": "B", "reason": "B is more compl', "B"),  # cut off by max_tokens
    ("Both are fine, but A is shorter. Winner: A", "A"),
    ("My verdict: [[B]]", "B"),
    ("[[C]]", "tie"),
    ("tie", "tie"),
    ("Answer B is better: it names the city.", "B"),
])
def test_pairwise_replies_parse(reply, winner):
    assert parse_pairwise(reply)[0] == winner


def test_a_cut_off_reply_keeps_its_reason():
    assert parse_pairwise('{"winner": "B", "reason": "B is more compl') == ("B", "B is more compl")


@pytest.mark.parametrize(("reply", "words"), [
    ("", "empty"), ("Both answers discuss the topic at length.", "held no verdict"),
    ("I cannot help with comparing these.", "declined"), ('{"winner": "C or D"}', "held no verdict"),
])
def test_replies_without_a_verdict_say_why(reply, words):
    with pytest.raises(NoVerdict) as info:
        parse_pairwise(reply)
    assert words in info.value.reason


@pytest.mark.parametrize(("reply", "score"), [('{"score": 4, "reason": "ok"}', 4), ("Score: 3/5", 3), ("5", 5),
                                              ('{"rating": "2"}', 2)])
def test_scores_parse(reply, score):
    assert parse_score(reply)[0] == score


@pytest.mark.parametrize("reply", ['{"score": 7}', "score: 8/10", '{"score": 3.5}', "great answer"])
def test_bad_scores_are_no_verdict(reply):
    with pytest.raises(NoVerdict):
        parse_score(reply)


def test_combining_the_two_orders():
    v = lambda first, winner="", error="": PairVerdict(first=first, winner=winner, error=error)  # noqa: E731
    assert combine(v("base", "adapter"), v("adapter", "adapter")) == ("win", False, "")
    assert combine(v("base", "base"), v("adapter", "base")) == ("loss", False, "")
    assert combine(v("base", "adapter"), v("adapter", "base")) == ("tie", True, "")  # position bias
    assert combine(v("base", "adapter"), v("adapter", "tie")) == ("tie", True, "")
    outcome, _, reason = combine(v("base", "adapter"), v("adapter", error="timed out"))
    assert outcome == "no_verdict" and reason == "adapter first: timed out"  # one order alone is not a win


def test_the_wilson_interval():
    # Reference values (Wilson 1927; e.g. statsmodels proportion_confint(method="wilson")).
    assert wilson_interval(7, 10) == pytest.approx((0.3967781, 0.8922087), abs=1e-6)
    assert wilson_interval(0, 5) == pytest.approx((0.0, 0.4344825), abs=1e-6)
    assert wilson_interval(5, 5) == pytest.approx((0.5655175, 1.0), abs=1e-6)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_a_judge_url_the_outbound_policy_denies_is_refused_before_any_call(make_proxy, data_root, vllm, judge):
    """A request names the judge, so its URL passes synthtune.outbound; the proxy's own vLLM targets,
    named by the operator, don't: with loopback denied they still answer, as vLLM and as the judge."""
    write_adapter(data_root / "adapters", ADAPTER, base="fake-model")
    proxy = make_proxy(data_root, vllm_url=vllm.base_url, outbound_deny="127.0.0.0/8")
    path = data_root / "datasets" / "rows.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"instruction": "win", "output": GOOD}) + "\n")
    for url, rule in (("http://169.254.169.254/v1", "169.254.0.0/16"), (judge.base_url, "127.0.0.0/8")):
        error = rpc_error(proxy.compare_batch, ADAPTER, dataset_path="datasets/rows.jsonl",
                          judge=pb.Judge(base_url=url, model="judge-model"))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "judge.base_url" in error.details() and rule in error.details() and "SYNTHTUNE_OUTBOUND" in error.details()
    assert judge.requests == [] and vllm.chat_requests() == []
    vllm.respond = lambda body: (judge_reply(body) if "<answer_a>" in str(body["messages"])
                                 else GOOD if body["model"] == ADAPTER else BAD)
    events = proxy.compare_batch(ADAPTER, dataset_path="datasets/rows.jsonl",
                                 judge=pb.Judge(base_url=vllm.base_url, model="fake-model", request_timeout_s=5))
    assert events[-1].summary.judge.wins == 1
