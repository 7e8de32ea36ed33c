"""The LLM judge against the fake endpoint through a real ChatClient: request shape, parsing, faults."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time

import pytest

from datagen_svc.judge import (
    DEFAULT_MIN_SCORE,
    DEFAULT_RUBRIC,
    MAX_CRITERIA,
    REASON_MAX_CHARS,
    VERDICT_MAX_TOKENS,
    Criterion,
    Judge,
    JudgeError,
    check_min_score,
    check_rubric,
    parse_verdict,
)
from datagen_svc.openai_client import ChatClient, ClientConfig, EndpointError
from synthtune.errors import InvalidArgument
from tests.datagen_svc.conftest import fake_client_config
from tests.support.fake_openai import FakeOpenAI, Hang, Reply, Status

NAMES = [c.name for c in DEFAULT_RUBRIC]
GOOD = json.dumps({"reason": "Accurate and on point.", "helpfulness": 4, "correctness": 5, "instruction_following": 4})


def config(fake: FakeOpenAI, **overrides) -> ClientConfig:
    return fake_client_config(fake, **overrides)


def judge_rows(fake: FakeOpenAI, rows: int = 1, *, rubric=DEFAULT_RUBRIC, system: str = "", **overrides):
    """Score `rows` rows concurrently with one Judge; returns (verdicts, judge)."""

    async def go():
        async with ChatClient(config(fake, **overrides)) as client:
            judge = Judge(client=client, rubric=rubric)
            verdicts = await asyncio.gather(
                *(
                    judge.score(instruction=f"Name a prime number ({i}).", output="7 is prime.", system=system)
                    for i in range(rows)
                )
            )
            return verdicts, judge

    return asyncio.run(go())


def judge_one(fake: FakeOpenAI, **kwargs):
    [verdict], _ = judge_rows(fake, **kwargs)
    return verdict


def prompt_of(request) -> str:
    return request.body["messages"][0]["content"]


# -- the request and a good verdict ---------------------------------------------------------


def test_asks_for_a_judgement_schema_with_one_bounded_integer_per_criterion(fake):
    fake.script(Reply(GOOD))
    verdict = judge_one(fake, system="You are terse.")
    assert verdict.as_json() == {
        "scores": {"helpfulness": 4, "correctness": 5, "instruction_following": 4},
        "mean": 4.33,
        "reason": "Accurate and on point.",
    }
    [sent] = fake.chat_requests()
    assert sent.body["temperature"] == 0 and sent.body["max_tokens"] == VERDICT_MAX_TOKENS
    fmt = sent.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "judgement"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert list(schema["properties"]) == ["reason", *NAMES]
    assert schema["required"] == ["reason", *NAMES] and schema["additionalProperties"] is False
    assert schema["properties"]["reason"] == {"type": "string", "maxLength": REASON_MAX_CHARS}
    for name in NAMES:
        assert schema["properties"][name] == {"type": "integer", "minimum": 1, "maximum": 5}
    prompt = prompt_of(sent)
    for part in ("Name a prime number (0).", "7 is prime.", "You are terse.", *[c.description for c in DEFAULT_RUBRIC]):
        assert part in prompt
    # The fake (and any planner-detecting proxy) must not mistake the judge for planning.
    assert not sent.is_planning


def test_no_system_prompt_no_system_section(fake):
    fake.script(Reply(GOOD))
    judge_one(fake)
    assert "<system_prompt>" not in prompt_of(fake.chat_requests()[0])


def test_a_custom_rubric_shapes_the_schema_and_the_verdict(fake):
    rubric = check_rubric([("conciseness", "Is it short?"), ("tone", "Is it polite?")])
    fake.script(Reply('{"reason": "Short, a bit curt.", "conciseness": 5, "tone": 2}'))
    verdict = judge_one(fake, rubric=rubric)
    assert verdict.scores == {"conciseness": 5, "tone": 2} and verdict.mean == 3.5
    [sent] = fake.chat_requests()
    schema = sent.body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["reason", "conciseness", "tone"]
    assert "- conciseness: Is it short?" in prompt_of(sent) and "helpfulness" not in prompt_of(sent)


def test_an_empty_rubric_means_the_default(fake):
    fake.script(Reply(GOOD))
    assert list(judge_one(fake, rubric=()).scores) == NAMES


# -- plain text when response_format is rejected ---------------------------------------------


def test_rejected_response_format_switches_to_plain_text_for_good(caplog):
    with FakeOpenAI(reject_response_format=True) as fake:
        fake.script(*[Reply(f"```json\n{GOOD}\n```")] * 3)
        with caplog.at_level(logging.INFO, logger="datagen_svc.judge"):
            verdicts, judge = judge_rows(fake, rows=3, concurrency=1)
        requests = fake.chat_requests()
    assert [v.scores for v in verdicts] == [verdicts[0].scores] * 3 and verdicts[0].mean == pytest.approx(13 / 3)
    assert judge.structured is False
    # One rejected schema request, then every row in text: 3 answered, no second try of the schema.
    assert ["response_format" in r.body for r in requests] == [True, False, False, False]
    assert "Reply with only this JSON object" in prompt_of(requests[-1])
    switched = [r for r in caplog.records if "plain text" in r.getMessage()]
    assert len(switched) == 1 and switched[0].levelno == logging.INFO


def test_a_400_that_text_cannot_fix_is_an_endpoint_error_and_keeps_the_schema(fake):
    # E.g. a prompt too long for the judge's context: the schema is not to blame.
    async def twice():
        async with ChatClient(config(fake)) as client:
            judge = Judge(client=client)
            with pytest.raises(EndpointError) as info:
                await judge.score(instruction="q", output="a")
            assert info.value.status == 400 and "too long" in info.value.message
            return judge, await judge.score(instruction="q", output="a")

    fake.script(Status(400, message="too long"), Status(400, message="too long"), Reply(GOOD))
    judge, verdict = asyncio.run(twice())
    assert judge.structured and verdict.mean == pytest.approx(13 / 3)
    assert ["response_format" in r.body for r in fake.chat_requests()] == [True, False, True]


def test_only_the_first_request_waits_alone_even_when_it_fails():
    # A down endpoint must not turn concurrent rows into a queue of timeouts.
    with FakeOpenAI(latency_s=0.1, default=Reply(GOOD)) as fake:
        fake.script(Status(503))

        async def go():
            async with ChatClient(config(fake, max_retries=0)) as client:
                judge = Judge(client=client)
                return await asyncio.gather(
                    *(judge.score(instruction=f"q{i}", output="a") for i in range(4)), return_exceptions=True
                )

        results = asyncio.run(go())
        assert isinstance(results[0], EndpointError) and all(r.mean for r in results[1:])
        assert fake.max_in_flight == 3


def test_a_fatal_status_propagates_at_once(fake):
    fake.script(Status(401, message="bad token"))
    with pytest.raises(EndpointError) as info:
        judge_rows(fake)
    assert info.value.fatal and len(fake.chat_requests()) == 1


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(GOOD, id="json"),
        pytest.param(f"Here is my verdict:\n```json\n{GOOD}\n```\nThanks.", id="fenced"),
        pytest.param(f"After careful thought: {GOOD} That is all.", id="prose-then-json"),
        pytest.param('{"scores": {"Helpfulness": "4", "Correctness": 5.0, "instruction following": "4/5"}, '
                     '"reason": "Accurate and on point."}', id="nested-strings-spaces"),
        pytest.param("Helpfulness: 4\nCorrectness = 5/5\n- **Instruction_Following**: 4\n"
                     "Reason: Accurate and on point.", id="lines"),
        pytest.param("**Helpfulness:** 4 out of 5\n**Correctness** (1-5): 5\n"
                     "**Instruction-following**: 4\n**Reason**: Accurate and on point.", id="markdown-lines"),
        pytest.param('{"reason": "Accurate and on point.", "helpfulness": 4, "correctness": 5, '
                     '"instruction_following": 4, "notes": "the model kept go', id="truncated-after-scores"),
    ],
)
def test_parses_the_ways_models_reply(reply):
    verdict = parse_verdict(reply, DEFAULT_RUBRIC)
    assert verdict.scores == {"helpfulness": 4, "correctness": 5, "instruction_following": 4}
    assert verdict.reason == "Accurate and on point."


def test_the_first_complete_json_object_wins_over_an_echoed_example():
    reply = 'You asked for {"helpfulness": 1} style. Mine: {"helpfulness": 3, "correctness": 2, ' \
            '"instruction_following": 1, "reason": "Wrong."}'
    verdict = parse_verdict(reply, DEFAULT_RUBRIC)
    assert verdict.scores == {"helpfulness": 3, "correctness": 2, "instruction_following": 1}
    assert verdict.mean == 2 and verdict.reason == "Wrong."


def test_a_long_reason_is_cut_to_the_cap():
    reply = json.dumps({"reason": "word " * 200, "helpfulness": 4, "correctness": 4, "instruction_following": 4})
    reason = parse_verdict(reply, DEFAULT_RUBRIC).reason
    assert len(reason) == REASON_MAX_CHARS and reason.endswith("...")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("I'd rather not grade this.", "held no scores (it began \"I'd rather not grade this.\")"),
        ('{"reason": "Clear, but the reply was cut', "held no scores"),
        ('{"helpfulness": 4, "correctness": 5}', "no score for instruction_following"),
        ("Helpfulness: 4", "no score for correctness, instruction_following"),
        ('{"helpfulness": 7, "correctness": 5, "instruction_following": 4}', "helpfulness 7, outside 1 to 5"),
        ('{"helpfulness": 0, "correctness": 5, "instruction_following": 4}', "helpfulness 0, outside 1 to 5"),
        ("helpfulness: 4\ncorrectness: -1\ninstruction_following: 4", "correctness -1, outside 1 to 5"),
        ('{"helpfulness": 4.5, "correctness": 5, "instruction_following": 4}', "helpfulness 4.5, not a whole number"),
        ("helpfulness: 8/10\ncorrectness: 5\ninstruction_following: 4", "helpfulness 8/10, not on the 1 to 5 scale"),
        ('{"helpfulness": true, "correctness": 5, "instruction_following": 4}', "helpfulness is not a number"),
        ('{"helpfulness": "great", "correctness": 5, "instruction_following": 4}', "helpfulness is not a number"),
    ],
)
def test_unusable_replies_name_what_was_wrong(reply, expected):
    with pytest.raises(JudgeError) as info:
        parse_verdict(reply, DEFAULT_RUBRIC)
    assert expected in info.value.reason


def test_a_garbage_reply_is_asked_for_once_more_then_is_a_judge_error(fake):
    fake.script(Reply("I cannot help with that."), Reply("Still no."), Reply(GOOD))
    with pytest.raises(JudgeError) as info:
        judge_rows(fake)
    assert "held no scores" in info.value.reason and info.value.reason.endswith("(asked twice)")
    first, second = fake.chat_requests()
    # The second ask quotes the bad reply back and says what was wrong, still with the schema.
    assert [m["role"] for m in second.body["messages"]] == ["user", "assistant", "user"]
    assert second.body["messages"][1]["content"] == "I cannot help with that."
    assert "held no scores" in second.body["messages"][2]["content"]
    assert second.body["response_format"] == first.body["response_format"]


def test_a_garbage_reply_then_a_good_one_is_a_verdict(fake):
    fake.script(Reply('{"helpfulness": 9}'), Reply(GOOD))
    assert judge_one(fake).mean == pytest.approx(13 / 3)
    assert len(fake.chat_requests()) == 2


def test_out_of_range_scores_twice_are_a_judge_error_through_the_endpoint(fake):
    bad = '{"reason": "x", "helpfulness": 6, "correctness": 5, "instruction_following": 4}'
    fake.script(Reply(bad), Reply(bad))
    with pytest.raises(JudgeError, match="helpfulness 6, outside 1 to 5"):
        judge_rows(fake)


# -- endpoint faults ---------------------------------------------------------------------------


def test_a_429_storm_then_success_honours_retry_after(fake):
    fake.script(*[Status(429, retry_after="0.1")] * 3, Reply(GOOD))
    assert judge_one(fake, max_retries=4).scores["correctness"] == 5
    arrivals = [r.at for r in fake.chat_requests()]
    assert len(arrivals) == 4
    # The client's own backoff here is at most 0.05 s; the waits are the server's.
    assert all(later - earlier >= 0.1 for earlier, later in zip(arrivals, arrivals[1:], strict=False))


def test_a_hung_request_is_an_endpoint_error_after_the_timeout(fake):
    fake.script(Hang())
    started = time.monotonic()
    with pytest.raises(EndpointError, match="timed out after 0.3s"):
        judge_rows(fake, timeout_s=0.3, max_retries=0)
    assert 0.3 <= time.monotonic() - started < 2


def test_a_500_past_the_retries_is_an_endpoint_error(fake):
    fake.default = Status(500, message="judge crashed")
    with pytest.raises(EndpointError) as info:
        judge_rows(fake, max_retries=2)
    assert info.value.status == 500 and not info.value.fatal
    assert "judge crashed" in info.value.message and "gave up after 3 attempts" in info.value.message
    assert len(fake.chat_requests()) == 3  # the judge does not retry endpoint errors on top of the client


# -- request checks ----------------------------------------------------------------------------


def test_check_rubric_keeps_names_and_tidies_descriptions():
    assert check_rubric([]) is DEFAULT_RUBRIC
    rubric = check_rubric([("safety", "  Is it\nsafe?  "), Criterion("style_2", "")])
    assert rubric == (Criterion("safety", "Is it safe?"), Criterion("style_2", ""))


@pytest.mark.parametrize(
    ("criteria", "field", "expected"),
    [
        ([("Helpfulness", "x")], "filters.judge.rubric[0].name", "lower-case"),
        ([("ok", "x"), ("2fast", "x")], "filters.judge.rubric[1].name", "starting with a letter"),
        ([("a" * 41, "x")], "filters.judge.rubric[0].name", "1 to 40"),
        ([("tone", "x"), ("tone", "y")], "filters.judge.rubric[1].name", "repeats filters.judge.rubric[0].name"),
        ([("reason", "x")], "filters.judge.rubric[0].name", "reserved"),
        ([("tone", "x" * 501)], "filters.judge.rubric[0].description", "at most 500"),
        ([(f"c{i}", "x") for i in range(MAX_CRITERIA + 1)], "filters.judge.rubric", "at most 10"),
    ],
)
def test_check_rubric_rejects_with_the_field(criteria, field, expected):
    with pytest.raises(InvalidArgument) as info:
        check_rubric(criteria)
    assert info.value.field == field and expected in info.value.message


def test_check_rubric_accepts_exactly_the_limits():
    rubric = check_rubric([(f"c{i}", "x" * 500) for i in range(MAX_CRITERIA)])
    assert len(rubric) == MAX_CRITERIA


@pytest.mark.parametrize("value", [1, 1.0, DEFAULT_MIN_SCORE, 4.5, 5])
def test_check_min_score_accepts_1_to_5(value):
    assert check_min_score(value) == float(value)


@pytest.mark.parametrize("value", [0.99, 5.01, -3, math.nan, True, "3", None])
def test_check_min_score_rejects_with_the_field(value):
    with pytest.raises(InvalidArgument) as info:
        check_min_score(value, field="judge.min_score")
    assert info.value.field == "judge.min_score" and "from 1 to 5" in info.value.message
