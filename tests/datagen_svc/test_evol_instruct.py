"""Evol-Instruct chains against the fake endpoint through a real ChatClient."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re

import pytest

from datagen_svc.evol_instruct import (
    BREADTH,
    DEPTH_OPERATIONS,
    EVOLUTION_MAX_TOKENS,
    MAX_FAILED_CHAINS,
    EvolInstructSource,
    clean_evolution,
    evolution_problem,
)
from datagen_svc.openai_client import ChatClient, EndpointError
from datagen_svc.planning import PlanningError
from tests.datagen_svc.conftest import fake_client_config
from tests.support.fake_openai import Reply, Status, schema_name

SEEDS = ("Write a haiku about rain.", "Explain how a bicycle gear works.")
_GIVEN_RE = re.compile(r"#Given Prompt#:\n(.*?)\n\n#(?:Rewritten|Created) Prompt#:", re.DOTALL)
# Which depth operation a prompt asks for, by a phrase of its method line.
_METHOD_PHRASES = {
    "add_constraints": "one more constraint",
    "deepen": "depth and breadth of the inquiry",
    "concretise": "more specific ones",
    "increase_reasoning": "multi-step reasoning",
}


def prompt_of(body) -> str:
    return body["messages"][-1]["content"]


def operation_of(body) -> str:
    prompt = prompt_of(body)
    if "Prompt Creator" in prompt:
        return BREADTH
    [operation] = [op for op, phrase in _METHOD_PHRASES.items() if phrase in prompt]
    return operation


def evolving(fake):
    """Make the fake answer evolution prompts with a new, distinct rewrite of the given prompt."""
    counter = itertools.count(1)

    def respond(body):
        if match := _GIVEN_RE.search(prompt_of(body)):
            return f"{match.group(1)} Step {next(counter)}."
        return None

    fake.respond = respond
    return fake


def client_for(fake) -> ChatClient:
    return ChatClient(fake_client_config(fake, max_retries=0, backoff_max_s=0.02))


def draw(fake, *, calls: int = 1, concurrent: bool = False, **options):
    """Call next() `calls` times on a new source; returns (results, discards)."""
    discards: list[tuple[str, str]] = []
    values = {
        "seeds": SEEDS,
        "topic": "",
        "rounds": 2,
        "breadth_share": 0.25,
        "sampling": {"temperature": 0.7, "max_tokens": 32},
        "known": [],
        "rng": random.Random(7),
    } | options

    async def go():
        async with client_for(fake) as client:
            source = EvolInstructSource(
                client=client, on_discard=lambda text, reason: discards.append((text, reason)), **values
            )
            if concurrent:
                return await asyncio.gather(*(source.next(wanted=calls) for _ in range(calls)))
            return [await source.next(wanted=calls - n) for n in range(calls)]

    return asyncio.run(go()), discards


def test_a_row_is_its_seed_evolved_round_by_round_with_provenance(fake):
    evolving(fake)
    [planned], discards = draw(fake, rounds=3)
    root = SEEDS[0]
    assert planned.instruction == f"{root} Step 1. Step 2. Step 3."
    assert planned.provenance["strategy"] == "evol_instruct"
    assert planned.provenance["root"] == root
    assert planned.provenance["parent"] == f"{root} Step 1. Step 2."
    sent = [r.body for r in fake.chat_requests()]
    assert planned.provenance["evolutions"] == [operation_of(b) for b in sent] and len(sent) == 3
    assert discards == []
    # Structured output with the caller's sampling, but the evolution's own token cap.
    for body in sent:
        assert schema_name(body) == "evolved_instruction"
        assert body["temperature"] == 0.7 and body["max_tokens"] == EVOLUTION_MAX_TOKENS
    assert [_GIVEN_RE.search(prompt_of(b)).group(1) for b in sent] == [
        root,
        f"{root} Step 1.",
        f"{root} Step 1. Step 2.",
    ]


def test_a_structured_reply_is_unwrapped_and_an_endpoint_without_response_format_gets_plain_text(fake):
    fake.respond = lambda body: json.dumps({"instruction": "Write a haiku about rain at night."})
    [planned], _ = draw(fake, rounds=1)
    assert planned.instruction == "Write a haiku about rain at night."

    fake.requests.clear()
    fake.reject_response_format = True
    cities = iter(["Lisbon", "Oslo"])
    fake.respond = lambda body: f"Write a haiku about rain in {next(cities)}."
    [first, second], _ = draw(fake, rounds=1, calls=2)
    assert (first.instruction, second.instruction) == ("Write a haiku about rain in Lisbon.",
                                                      "Write a haiku about rain in Oslo.")
    sent = [r.body for r in fake.chat_requests()]
    # One refused structured call, then plain text for good.
    assert ["response_format" in b for b in sent] == [True, False, False]


def test_each_failed_evolution_is_discarded_with_its_reason_and_a_fresh_chain_starts(fake):
    evolving(fake)
    fake.script(
        Reply(SEEDS[0]),
        Reply("#Rewritten Prompt#: Write a haiku, as the #Given Prompt# asks."),
        Reply("I\u2019m sorry, but I can't help with rewriting that."),
        Reply("   \n "),
        Status(500, message="backend exploded"),
    )
    [planned], discards = draw(fake, rounds=1)
    sent = fake.chat_requests()
    ops = [operation_of(r.body) for r in sent]
    assert discards == [
        (SEEDS[0], f"round 1 ({ops[0]}): no change from its parent"),
        (
            "Write a haiku, as the #Given Prompt# asks.",  # the label is stripped, the leak is not
            f"round 1 ({ops[1]}): leaks the prompt's scaffolding",
        ),
        (
            "I\u2019m sorry, but I can't help with rewriting that.",
            f"round 1 ({ops[2]}): a refusal, not an instruction",
        ),
        ("", f"round 1 ({ops[3]}): empty rewrite"),
        ("", discards[4][1]),
    ]
    assert (
        discards[4][1].startswith(f"round 1 ({ops[4]}): endpoint error: ")
        and "backend exploded" in discards[4][1]
    )
    # Each failed chain was abandoned: every new one started from the next base, from scratch.
    assert [_GIVEN_RE.search(prompt_of(r.body)).group(1) for r in sent] == [SEEDS[0], SEEDS[1]] * 3
    assert planned.provenance["root"] == SEEDS[1] == planned.provenance["parent"]
    assert planned.instruction == f"{SEEDS[1]} Step 1."


@pytest.mark.parametrize(
    ("candidate", "why"),
    [
        ("Write a haiku about rain at dusk.", None),
        ("WRITE  a haiku about RAIN.", "no change from its parent"),
        ("Write a haiku.", "repeats an earlier instruction of its chain"),
        ("Make the rewritten prompt about rain at dusk.", "leaks the prompt's scaffolding"),
        ("Improve it as the #Created Prompt# says.", "leaks the prompt's scaffolding"),
        ("As an AI language model, I suggest: write a haiku.", "a refusal, not an instruction"),
        ("I cannot rewrite this prompt for you.", "a refusal, not an instruction"),
        ("Write an apology that says sorry to a neighbour.", None),  # "sorry" inside is fine
        ("Haiku please.", "fewer than 3 words"),
        ("Write " + "a very long haiku " * 80, "longer than 1000 characters"),
    ],
)
def test_elimination_rules(candidate, why):
    assert evolution_problem(candidate, chain=["Write a haiku.", "Write a haiku about rain."]) == why


def test_a_failure_in_a_later_round_names_that_round(fake):
    evolving(fake)
    fake.script(Reply(), Reply("Sorry, I cannot do that."))
    [planned], discards = draw(fake)
    [(candidate, reason)] = discards
    assert candidate == "Sorry, I cannot do that."
    assert reason == f"round 2 ({operation_of(fake.chat_requests()[1].body)}): a refusal, not an instruction"
    assert planned.provenance["root"] == SEEDS[1]


def test_rewrites_that_repeat_the_dataset_or_earlier_rows_are_discarded(fake):
    fake.respond = lambda body: f"{_GIVEN_RE.search(prompt_of(body)).group(1)} In detail."
    [planned], discards = draw(fake, rounds=1, known=[f"{SEEDS[0]} In detail."])
    assert discards == [
        (
            f"{SEEDS[0]} In detail.",
            f"round 1 ({discards_op(fake, 0)}): duplicate of an instruction already produced",
        )
    ]
    assert planned.instruction == f"{SEEDS[1]} In detail."

    # Without `known`: both seeds give one row each, then every chain repeats one of them.
    fake.requests.clear()
    with pytest.raises(PlanningError, match="duplicate of an instruction already produced"):
        draw(fake, calls=3, rounds=1)
    assert len(fake.chat_requests()) == 2 + MAX_FAILED_CHAINS


def discards_op(fake, index: int) -> str:
    return operation_of(fake.chat_requests()[index].body)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_breadth_or_depth_is_chosen_per_round_by_the_share(fake, share):
    evolving(fake)
    rows, discards = draw(fake, calls=10, rounds=2, breadth_share=share)
    sent = [operation_of(r.body) for r in fake.chat_requests()]
    assert [op for row in rows for op in row.provenance["evolutions"]] == sent and not discards
    breadth = sent.count(BREADTH)
    if share == 0.0:
        assert breadth == 0 and set(sent) == set(DEPTH_OPERATIONS)  # all four depth operations appear
    elif share == 1.0:
        assert breadth == 20
    else:
        assert 5 <= breadth <= 15  # 20 draws at 0.5 with a seeded rng
    breadth_prompt = next(
        (prompt_of(r.body) for r in fake.chat_requests() if operation_of(r.body) == BREADTH), ""
    )
    assert share == 0.0 or ("brand-new prompt" in breadth_prompt and "#Created Prompt#:" in breadth_prompt)


def test_the_same_rng_seed_gives_the_same_choices(fake):
    evolving(fake)
    first, _ = draw(fake, calls=5, rng=random.Random(3), breadth_share=0.5)
    second, _ = draw(fake, calls=5, rng=random.Random(3), breadth_share=0.5)
    assert [r.provenance["evolutions"] for r in first] == [r.provenance["evolutions"] for r in second]


def test_without_seeds_the_bases_come_from_self_instruct_on_the_topic(fake):
    evolving(fake)
    rows, _ = draw(fake, calls=3, seeds=(), topic="knots", breadth_share=1.0)
    planning = [r for r in fake.chat_requests() if schema_name(r.body) == "instructions"]
    assert len(planning) == 1 and "knots" in prompt_of(planning[0].body)  # one batch serves all three
    assert [r.provenance["root"] for r in rows] == [
        f"Task {n}: describe item number {n} in detail." for n in (1, 2, 3)
    ]
    assert all(
        "stay on the topic: knots" in prompt_of(r.body) for r in fake.chat_requests() if r not in planning
    )


def test_chains_for_different_rows_run_concurrently(fake):
    evolving(fake)
    fake.latency_s = 0.05
    rows, discards = draw(fake, calls=4, concurrent=True)
    assert len({r.instruction for r in rows}) == 4 and not discards
    assert fake.max_in_flight >= 3  # the client allows 4


@pytest.mark.parametrize(
    ("reply", "cleaned"),
    [
        ('Rewritten Prompt: "Write a haiku about rain at dusk."', "Write a haiku about rain at dusk."),
        ("#Rewritten Prompt#:\nWrite a haiku about rain at dusk.", "Write a haiku about rain at dusk."),
        ("**New instruction:** \u201cWrite a haiku.\u201d", "Write a haiku."),
        ("Sure! Here is the more complex version:\n'Explain gears to a child.'", "Explain gears to a child."),
        ("```\nExplain gears.\n```", "Explain gears."),
        ("Prompt-based learning: explain it.", "Prompt-based learning: explain it."),
    ],
)
def test_labels_and_quotes_models_add_are_stripped(reply, cleaned):
    assert clean_evolution(reply) == cleaned


def test_failures_in_a_row_below_the_limit_are_survived(fake):
    evolving(fake)
    refusal = Reply("Sorry, I can't rewrite prompts.")
    fake.script(*[refusal] * (MAX_FAILED_CHAINS - 1), Reply(), *[refusal] * (MAX_FAILED_CHAINS - 1))
    rows, discards = draw(fake, calls=2, rounds=1)  # a kept row resets the count
    assert len(rows) == 2 and len(discards) == 2 * (MAX_FAILED_CHAINS - 1)


def test_repeated_failures_end_the_job_with_the_last_reason(fake):
    fake.default = Reply("Sorry, I can't rewrite prompts.")
    discards: list[tuple[str, str]] = []

    async def go():
        async with client_for(fake) as client:
            source = EvolInstructSource(
                client=client,
                seeds=SEEDS,
                topic="",
                rounds=2,
                breadth_share=0.0,
                sampling={},
                known=[],
                on_discard=lambda text, reason: discards.append((text, reason)),
            )
            await source.next(wanted=1)

    with pytest.raises(PlanningError) as info:
        asyncio.run(go())
    assert len(discards) == MAX_FAILED_CHAINS == len(fake.chat_requests())
    assert f"{MAX_FAILED_CHAINS} evolution chains in a row failed" in info.value.reason
    assert discards[-1][1] in info.value.reason and "a refusal" in info.value.reason


def test_a_fatal_endpoint_error_propagates(fake):
    fake.script(Status(401, message="bad token"))
    with pytest.raises(EndpointError) as info:
        draw(fake)
    assert info.value.fatal and len(fake.chat_requests()) == 1


@pytest.mark.parametrize(("option", "value"), [("rounds", 0), ("rounds", 6), ("breadth_share", 1.5)])
def test_out_of_range_settings_are_refused(fake, option, value):
    with pytest.raises(ValueError, match=option):
        draw(fake, **{option: value})
    assert fake.chat_requests() == []
