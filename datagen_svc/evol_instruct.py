"""Evol-Instruct (WizardLM, Xu et al. 2023): instructions made harder, or rarer, by rewriting.

Each row's instruction comes from a chain: a base instruction (the next seed, round-robin,
or with no seeds one from a SelfInstructSource on the topic) is rewritten `rounds` times.
Every round picks, with probability `breadth_share`, in-breadth evolving (a brand-new,
rarer instruction in the same domain) and otherwise one of four in-depth operations: add a
constraint, deepen the inquiry, concretise general concepts, ask for multi-step reasoning.
The paper's prompts are kept in structure and shortened so small models follow them.

Evolutions ask for structured output (a JSON object with one "instruction", at most
planning.SCHEMA_MAX_CHARS long) where the endpoint supports it: a small model asked for
plain text goes on from the rewrite into answering it and is cut off at the token cap
(SmolLM2 on vLLM did so on every try), where the schema makes it stop. An endpoint that
rejects response_format gets plain text from then on, as in planning.

The paper's elimination step is made deterministic: a rewrite fails when it is empty, no
different from its chain (normalised), already produced or in the dataset, leaks the
prompt's scaffolding ("given prompt", "#Rewritten Prompt#"), is a refusal, was cut off, or
is too long or too short to be an instruction. A failed round is reported to `on_discard`
and its chain abandoned; the next chain starts from a fresh base.

Cost per kept row: `rounds` evolution calls here plus the generator's 1 answer call, plus
the calls of abandoned chains (up to `rounds` each), plus without seeds one self-instruct
batch per up to planning.MAX_BATCH bases.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable
from typing import Any

from datagen_svc.openai_client import ChatClient, EndpointError
from datagen_svc.planning import (
    MAX_INSTRUCTION_CHARS,
    SCHEMA_MAX_CHARS,
    SCHEMA_REJECTED_STATUSES,
    Planned,
    PlanningError,
    SelfInstructSource,
)
from datagen_svc.quality import normalise_instruction

logger = logging.getLogger(__name__)

DEFAULT_ROUNDS = 2
MAX_ROUNDS = 5
DEFAULT_BREADTH_SHARE = 0.25  # allowed: 0..1
# An evolution's own budget, replacing the answers' max_tokens: a rewrite adds 10 to 20 words
# to an instruction, so 256 tokens is ample, and a reply that hits it has run on into an answer.
EVOLUTION_MAX_TOKENS = 256
# Chains in a row that fail before we call the endpoint unable to evolve (a broken or
# unsuitable model would otherwise loop for ever, paying for every try).
MAX_FAILED_CHAINS = 8
MIN_WORDS = 3

DEPTH_OPERATIONS = ("add_constraints", "deepen", "concretise", "increase_reasoning")
BREADTH = "breadth"

_DEPTH_METHODS = {
    "add_constraints": "Add one more constraint or requirement to it.",
    "deepen": "If it asks about certain issues, increase the depth and breadth of the inquiry.",
    "concretise": "Replace general concepts with more specific ones.",
    "increase_reasoning": (
        "If it can be solved with just a few simple thinking steps, "
        "rewrite it to explicitly ask for multi-step reasoning."
    ),
}
_BANNED_WORDS = (
    "'#Given Prompt#', '#Rewritten Prompt#', '#Created Prompt#', 'given prompt', 'rewritten prompt'"
)

# Text from the evolving prompt itself: the model echoed its scaffolding instead of a prompt.
SCAFFOLDING_MARKERS = (
    "given prompt",
    "rewritten prompt",
    "created prompt",
    "prompt rewriter",
    "prompt creator",
)
# A rewrite that opens like this declined the task; "as an AI" anywhere is a model talking about itself.
REFUSAL_OPENINGS = (
    "sorry",
    "i'm sorry",
    "i am sorry",
    "i apologi",
    "i cannot",
    "i can't",
    "i can not",
    "i'm unable",
    "i am unable",
    "i won't",
    "i will not",
    "unfortunately, i",
)
REFUSAL_ANYWHERE = ("as an ai", "as a language model")

# "Rewritten Prompt:", "**New instruction:**", "#Created Prompt#:" ... before the instruction.
_LABEL_RE = re.compile(
    r"^[\s*#_]*(?:the\s+)?(?:(?:rewritten|created|new|evolved|improved|revised)\s+)?(?:prompt|instruction)"
    r"[\s*#_]*(?::|\s[-\u2013\u2014])[\s*_]*",
    re.IGNORECASE,
)
# "Sure! Here is a more complex version:" on the first line, before the instruction.
_PREAMBLE_RE = re.compile(
    r"^(?:(?:sure|okay|ok|certainly)[!,.]?\s*)?here(?:'s| is)[^\n:]{0,80}:\s*", re.IGNORECASE
)
_FENCE_RE = re.compile(r"^```[a-z]*\s*(.*?)\s*```$", re.DOTALL | re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}


class EvolInstructSource:
    """Instructions evolved `rounds` times each; safe for many concurrent `next()` callers.

    Chains run in parallel (no lock is held across endpoint calls). `on_discard(candidate,
    reason)` hears of every failed round, e.g. ("...", "round 2 (deepen): leaks the prompt's
    scaffolding"). Raises PlanningError after MAX_FAILED_CHAINS failed chains in a row; a
    fatal EndpointError propagates.
    """

    def __init__(
        self,
        *,
        client: ChatClient,
        seeds: tuple[str, ...],
        topic: str,
        rounds: int = DEFAULT_ROUNDS,
        breadth_share: float = DEFAULT_BREADTH_SHARE,
        sampling: dict[str, Any],
        known: list[str],
        on_discard: Callable[[str, str], None],
        rng: random.Random | None = None,
    ):
        if not 1 <= rounds <= MAX_ROUNDS:
            raise ValueError(f"rounds must be 1..{MAX_ROUNDS}, not {rounds}")
        if not 0.0 <= breadth_share <= 1.0:
            raise ValueError(f"breadth_share must be 0..1, not {breadth_share}")
        self._client = client
        self._seeds = [s for s in seeds if s.strip()]
        self._topic = topic.strip()
        self._rounds = rounds
        self._breadth_share = breadth_share
        # The caller's sampling, but an evolution is an instruction, not an answer: its own cap.
        self._sampling = {k: v for k, v in sampling.items() if k != "max_tokens"} | {
            "max_tokens": EVOLUTION_MAX_TOKENS
        }
        self._seen = {normalise_instruction(k) for k in known}
        self._on_discard = on_discard
        self._use_schema = True
        self._rng = rng or random.Random()
        self._next_seed = 0
        self._failed_in_a_row = 0
        self._last_reason = ""
        self._bases = (
            None
            if self._seeds
            else SelfInstructSource(
                client=client,
                topic=self._topic,
                seed_examples=(),
                sampling=sampling,
                known=known,
                rng=self._rng,
            )
        )

    async def next(self, *, wanted: int) -> Planned | None:
        while True:
            if self._failed_in_a_row >= MAX_FAILED_CHAINS:
                raise PlanningError(
                    f"{self._failed_in_a_row} evolution chains in a row failed; the last: {self._last_reason}"
                )
            root = await self._base(wanted)
            if root is None:
                return None
            planned = await self._chain(root)
            if planned is not None:
                self._failed_in_a_row = 0
                return planned
            self._failed_in_a_row += 1

    async def _base(self, wanted: int) -> str | None:
        if self._bases is None:
            seed = self._seeds[self._next_seed % len(self._seeds)]
            self._next_seed += 1
            return seed
        planned = await self._bases.next(wanted=wanted)
        return planned.instruction if planned is not None else None

    async def _chain(self, root: str) -> Planned | None:
        """The chain's last instruction, or None when a round failed (already reported)."""
        chain = [root]
        operations: list[str] = []
        for round_no in range(1, self._rounds + 1):
            operation = self._pick_operation()
            candidate, problem = await self._evolve(chain, operation)
            if problem is not None:
                return self._discard(candidate, f"round {round_no} ({operation}): {problem}")
            chain.append(candidate)
            operations.append(operation)
        # No await between this check and the add: concurrent chains cannot both keep one.
        key = normalise_instruction(chain[-1])
        if key in self._seen:
            return self._discard(
                chain[-1],
                f"round {self._rounds} ({operations[-1]}): duplicate of an instruction already produced",
            )
        self._seen.add(key)
        return Planned(
            chain[-1],
            {"strategy": "evol_instruct", "root": root, "parent": chain[-2], "evolutions": operations},
        )

    def _discard(self, candidate: str, reason: str) -> None:
        self._last_reason = reason
        logger.debug("evolution discarded", extra={"reason": reason})  # never the text: it may be private
        self._on_discard(candidate, reason)

    def _pick_operation(self) -> str:
        if self._rng.random() < self._breadth_share:
            return BREADTH
        return self._rng.choice(DEPTH_OPERATIONS)

    async def _evolve(self, chain: list[str], operation: str) -> tuple[str, str | None]:
        """(candidate, None) for a good rewrite of chain[-1], else (candidate or "", why it failed)."""
        prompt = evolution_prompt(chain[-1], operation, topic=self._topic)
        try:
            result = await self._ask(prompt)
        except EndpointError as exc:
            if exc.fatal:
                raise
            return "", f"endpoint error: {exc.message}"
        candidate = clean_evolution(_instruction_in(result.content))
        if result.finish_reason == "length":
            return candidate, f"cut off at {EVOLUTION_MAX_TOKENS} tokens"
        problem = evolution_problem(candidate, chain=chain)
        if problem is None and normalise_instruction(candidate) in self._seen:
            problem = "duplicate of an instruction already produced"
        return candidate, problem


    async def _ask(self, prompt: str):
        messages = [{"role": "user", "content": prompt}]
        if self._use_schema:
            try:
                return await self._client.chat(
                    messages=messages, sampling=self._sampling, response_format=EVOLUTION_SCHEMA
                )
            except EndpointError as exc:
                if exc.fatal or exc.status not in SCHEMA_REJECTED_STATUSES:
                    raise
                logger.info("endpoint rejected response_format; evolving with plain text",
                            extra={"reason": exc.message})
                self._use_schema = False
        return await self._client.chat(messages=messages, sampling=self._sampling)


EVOLUTION_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "evolved_instruction",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"instruction": {"type": "string", "minLength": 1, "maxLength": SCHEMA_MAX_CHARS}},
            "required": ["instruction"],
            "additionalProperties": False,
        },
    },
}


def _instruction_in(reply: str) -> str:
    """The instruction of a structured reply, or the reply itself when it is plain text."""
    try:
        value = json.loads(reply, strict=False)
    except ValueError:
        return reply
    if isinstance(value, dict) and isinstance(value.get("instruction"), str):
        return value["instruction"]
    return reply


def evolution_prompt(instruction: str, operation: str, *, topic: str = "") -> str:
    """The evolving prompt for one round: `operation` is one of DEPTH_OPERATIONS or BREADTH."""
    if operation == BREADTH:
        lines = [
            "I want you to act as a Prompt Creator.",
            "Draw inspiration from the #Given Prompt# to create a brand-new prompt.",
            "It should belong to the same domain as the #Given Prompt# but be even more rare"
            + (f", and stay on the topic: {topic}." if topic else "."),
            "Its length and difficulty should be similar to the #Given Prompt#'s.",
            "It must be reasonable, self-contained, and understood and answered by humans.",
            f"Do not use these words in it: {_BANNED_WORDS}.",
            "Reply with only the created prompt; do not answer it.",
            "",
            "#Given Prompt#:",
            instruction,
            "",
            "#Created Prompt#:",
        ]
    else:
        lines = [
            "I want you to act as a Prompt Rewriter.",
            "Rewrite the #Given Prompt# into a more complex version, a bit harder for AI systems to handle.",
            "It must stay reasonable, and understood and answered by humans.",
            "Keep any code, table or input in the #Given Prompt#.",
            f"Method: {_DEPTH_METHODS[operation]}",
            "Do not make it verbose: add only 10 to 20 words.",
            f"Do not use these words in it: {_BANNED_WORDS}.",
            "Reply with only the rewritten prompt; do not answer it.",
            "",
            "#Given Prompt#:",
            instruction,
            "",
            "#Rewritten Prompt#:",
        ]
    return "\n".join(lines)


def clean_evolution(text: str) -> str:
    """A model's rewrite without the wrapping models add: a code fence, a "Sure, here is...:"
    preamble, a "Rewritten Prompt:" label, surrounding quotes."""
    text = text.strip()
    if match := _FENCE_RE.match(text):
        text = match.group(1).strip()
    text = _PREAMBLE_RE.sub("", text, count=1).strip()
    text = _LABEL_RE.sub("", text, count=1).strip()
    while len(text) > 1 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


def evolution_problem(candidate: str, *, chain: list[str]) -> str | None:
    """Why a cleaned rewrite of chain[-1] fails elimination, or None when it may be kept.

    `chain` is the root and every kept rewrite since, oldest first.
    """
    if not candidate.strip():
        return "empty rewrite"
    key = normalise_instruction(candidate)
    if key == normalise_instruction(chain[-1]):
        return "no change from its parent"
    if any(key == normalise_instruction(earlier) for earlier in chain[:-1]):
        return "repeats an earlier instruction of its chain"
    unmarked = " ".join(key.replace("#", " ").split())  # "#Given Prompt#" -> "given prompt"
    if any(marker in unmarked for marker in SCAFFOLDING_MARKERS):
        return "leaks the prompt's scaffolding"
    plain = key.replace("\u2019", "'")  # "I’m sorry"
    if plain.startswith(REFUSAL_OPENINGS) or any(marker in plain for marker in REFUSAL_ANYWHERE):
        return "a refusal, not an instruction"
    if len(candidate) > MAX_INSTRUCTION_CHARS:
        return f"longer than {MAX_INSTRUCTION_CHARS} characters"
    if len(candidate.split()) < MIN_WORDS:
        return f"fewer than {MIN_WORDS} words"
    return None
