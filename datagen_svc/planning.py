"""Where each row's instruction comes from, per mode.

- fixed: every instruction is the prompt template (the old app's behaviour);
- from_instructions: the caller's list, in order;
- self_instruct: batches of new instructions asked of the endpoint itself, on a
  topic and/or in the style of seed examples. The reply is JSON; where the
  endpoint supports `response_format` json_schema (vLLM does) we request it so
  even a weak model yields valid JSON, and fall back to plain text with robust
  parsing when the endpoint rejects it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from datagen_svc.openai_client import ChatClient, EndpointError
from datagen_svc.quality import normalise_instruction
from datagen_svc.spec import GenerationSpec, Mode

logger = logging.getLogger(__name__)

MAX_BATCH = 10
MAX_INSTRUCTION_CHARS = 1000
# Bounds asked of structured output. A weak model may fill every string to the limit, so the
# list must still fit a small context; real instructions are rarely longer.
SCHEMA_MAX_CHARS = 300
# The prompt quotes a few seeds and recent instructions, shortened, to steer diversity cheaply.
QUOTED_ITEMS = 3
QUOTED_CHARS = 120
# Batches in a row that bring nothing new before we call the endpoint unable to plan.
MAX_BARREN_BATCHES = 5
SCHEMA_REJECTED_STATUSES = {400, 422, 501}


class PlanningError(Exception):
    """The endpoint could not supply instructions; `reason` is shown to people."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Planned:
    """One instruction to answer, and where it came from.

    `provenance` goes to the row's line in the dataset's metadata file (never into the
    training row): always {"strategy": <mode>}, plus e.g. "parent" (the instruction it
    was evolved from), "evolutions" or "topic_path".
    """

    instruction: str
    provenance: dict[str, Any]
    # Mode curate: the source row as it stands (nothing is asked of a teacher) and its row number.
    row: dict[str, Any] | None = None
    index: int | None = None


class InstructionSource(Protocol):
    async def next(self, *, wanted: int) -> Planned | None:
        """The next instruction, or None when there are no more. `wanted` hints how many are still needed."""


class FixedSource:
    def __init__(self, prompt_template: str):
        self._prompt = prompt_template

    async def next(self, *, wanted: int) -> Planned | None:
        return Planned(self._prompt, {"strategy": "fixed"})


class ListSource:
    """The caller's instructions in order, silently skipping those already answered (on resume)."""

    def __init__(self, instructions: tuple[str, ...], *, answered: set[str]):
        self._items = iter(instructions)
        self._answered = answered

    async def next(self, *, wanted: int) -> Planned | None:
        for item in self._items:
            if normalise_instruction(item) not in self._answered:
                return Planned(item, {"strategy": "from_instructions"})
        return None


class SelfInstructSource:
    """Asks the endpoint for batches of instructions; one planning request at a time."""

    def __init__(
        self,
        *,
        client: ChatClient,
        topic: str,
        seed_examples: tuple[str, ...],
        sampling: dict[str, Any],
        known: list[str],
        rng: random.Random | None = None,
    ):
        self._client = client
        self._topic = topic.strip()
        self._seeds = list(seed_examples)
        # Diversity needs real sampling whatever temperature the answers use. max_tokens is the
        # answers' budget, too small for a list; the schema's bounds limit the reply instead.
        self._sampling = {k: v for k, v in sampling.items() if k != "max_tokens"} | {"temperature": 1.0}
        self._seen = {normalise_instruction(k) for k in known}
        self._recent = list(known[-QUOTED_ITEMS:])
        self._buffer: list[str] = []
        self._barren = 0
        self._last_reply = ""
        self._lock = asyncio.Lock()
        self._use_schema = True
        self._rng = rng or random.Random()

    async def next(self, *, wanted: int) -> Planned | None:
        async with self._lock:
            while not self._buffer:
                if self._barren >= MAX_BARREN_BATCHES:
                    raise PlanningError(
                        f"the endpoint gave no new instructions in {self._barren} tries "
                        f"(last reply began {self._last_reply[:120]!r})"
                    )
                self._last_reply, batch = await self._ask(max(1, min(MAX_BATCH, wanted)))
                fresh = [i for i in batch if normalise_instruction(i) not in self._seen]
                self._barren = 0 if fresh else self._barren + 1
                self._seen.update(normalise_instruction(i) for i in fresh)
                self._recent = (self._recent + fresh)[-QUOTED_ITEMS:]
                # Repeats are passed on too: the generator drops them, with a reason.
                self._buffer.extend(batch)
            return Planned(self._buffer.pop(0), {"strategy": "self_instruct"})

    async def _ask(self, count: int) -> tuple[str, list[str]]:
        messages = [{"role": "user", "content": self._prompt(count)}]
        if self._use_schema:
            try:
                result = await self._client.chat(
                    messages=messages, sampling=self._sampling, response_format=instructions_schema(count)
                )
                return result.content, parse_instructions(result.content)
            except EndpointError as exc:
                if exc.fatal or exc.status not in SCHEMA_REJECTED_STATUSES:
                    raise
                logger.info(
                    "endpoint rejected response_format; planning with plain text",
                    extra={"reason": exc.message},
                )
                self._use_schema = False
        result = await self._client.chat(messages=messages, sampling=self._sampling)
        return result.content, parse_instructions(result.content)

    def _prompt(self, count: int) -> str:
        lines = [
            "You are helping build a dataset of instructions for training an AI assistant.",
            f"Write {count} new, diverse, self-contained instruction{'s' if count > 1 else ''}"
            + (f" about: {self._topic}." if self._topic else "."),
        ]
        if self._seeds:
            examples = self._rng.sample(self._seeds, min(QUOTED_ITEMS, len(self._seeds)))
            lines.append("They should be like these examples:")
            lines += [f"- {shorten(e)}" for e in examples]
        if self._recent:
            lines.append("Do not repeat these:")
            lines += [f"- {shorten(r)}" for r in self._recent]
        lines.append("Vary the kind of task, its length and its difficulty.")
        lines.append('Reply with only a JSON object: {"instructions": ["...", "..."]}')
        return "\n".join(lines)


def shorten(text: str) -> str:
    """`text` on one line, cut to QUOTED_CHARS: how prompts quote examples and recent items."""
    text = " ".join(text.split())
    return text if len(text) <= QUOTED_CHARS else text[: QUOTED_CHARS - 3] + "..."


def instructions_schema(count: int) -> dict[str, Any]:
    """An OpenAI `response_format` asking for {"instructions": [<count> non-empty strings]}."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "instructions",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "instructions": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": SCHEMA_MAX_CHARS},
                        "minItems": 1,
                        "maxItems": count,
                    }
                },
                "required": ["instructions"],
                "additionalProperties": False,
            },
        },
    }


_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_LIST_START_RE = re.compile(r'"instructions"\s*:\s*\[', re.IGNORECASE)
_JSON_STRING_RE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BULLET_RE = re.compile(r"^\s*(?:\d{1,3}[.):]|[-*\u2022])\s+(.+?)\s*$")


def parse_instructions(text: str) -> list[str]:
    """Instructions found in a model's reply, in order, without blanks or repeats.

    Tries, in turn: the whole reply (or a fenced block) as JSON; the first JSON
    value inside it; the complete strings of a truncated "instructions" array;
    numbered or bulleted lines. Returns [] when nothing fits.
    """
    candidates = [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]
    for candidate in candidates:
        value = _first_json_value(candidate)
        if value is not None:
            found = _clean(_items_of(value))
            if found:
                return found
    if match := _LIST_START_RE.search(text):
        # A reply cut off by max_tokens: keep every string that was closed.
        salvaged = []
        for m in _JSON_STRING_RE.finditer(text, match.end()):
            try:
                salvaged.append(json.loads(f'"{m.group(1)}"', strict=False))
            except ValueError:
                continue
        if found := _clean(salvaged):
            return found
    return _clean([m.group(1) for line in text.splitlines() if (m := _BULLET_RE.match(line))])


def _first_json_value(text: str) -> Any:
    text = text.strip()
    # strict=False: some structured-output backends (xgrammar) let raw control characters into strings.
    decoder = json.JSONDecoder(strict=False)
    try:
        return decoder.decode(text)
    except ValueError:
        pass
    for start, char in enumerate(text):
        if char in "[{":
            try:
                value, _ = decoder.raw_decode(text, start)
            except ValueError:
                continue
            if isinstance(value, (list, dict)):
                return value
    return None


def _items_of(value: Any) -> list[Any]:
    if isinstance(value, dict):
        for key in ("instructions", "tasks", "items", "prompts"):
            if isinstance(value.get(key), list):
                return value[key]
        lists = [v for v in value.values() if isinstance(v, list)]
        return lists[0] if lists else []
    return value if isinstance(value, list) else []


def _clean(items: list[Any]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, dict):
            item = next(
                (item[k] for k in ("instruction", "prompt", "text", "task") if isinstance(item.get(k), str)),
                None,
            )
        if not isinstance(item, str):
            continue
        text = _CONTROL_RE.sub(" ", item).strip()
        if len(text) > 1 and text[0] == text[-1] == '"':
            text = text[1:-1].strip()  # a bulleted line that quotes its instruction
        key = normalise_instruction(text)
        if not text or len(text) > MAX_INSTRUCTION_CHARS or key in seen:
            continue
        seen.add(key)
        out.append(text)
    return out


class CurateSource:
    """Mode curate: the source dataset's rows still to decide, in order, each with its own number."""

    def __init__(self, rows: list[tuple[int, dict[str, Any], dict[str, Any]]]):
        self._rows = iter(rows)

    async def next(self, *, wanted: int) -> Planned | None:
        from datagen_svc.filters import row_instruction

        for index, row, metadata in self._rows:
            return Planned(row_instruction(row), metadata, row=row, index=index)
        return None


def make_source(
    *,
    spec: GenerationSpec,
    client: ChatClient | None,
    answered: list[str],
    state_dir: Path,
    on_discard: Callable[[str, str], None],
    curate_rows: list[tuple[int, dict[str, Any], dict[str, Any]]] | None = None,
) -> InstructionSource:
    """The instruction source for `spec.mode`.

    `answered` holds instructions already in the dataset (resume); `state_dir` is the job's
    folder, where a source may keep what it must not redo on resume (the topic tree);
    `on_discard(candidate, reason)` reports an instruction a source gave up on (a failed
    evolution); `curate_rows` are mode curate's source rows still to decide.
    """
    if spec.mode is Mode.CURATE:
        return CurateSource(curate_rows or [])
    if spec.mode is Mode.FIXED:
        return FixedSource(spec.prompt_template)
    if spec.mode is Mode.FROM_INSTRUCTIONS:
        return ListSource(spec.instructions, answered={normalise_instruction(a) for a in answered})
    assert client is not None
    sampling = spec.sampling.as_request_fields()
    if spec.mode is Mode.EVOL_INSTRUCT:
        from datagen_svc.evol_instruct import EvolInstructSource

        return EvolInstructSource(
            client=client,
            seeds=spec.seed_examples,
            topic=spec.topic,
            rounds=spec.evol_instruct.rounds,
            breadth_share=spec.evol_instruct.breadth_share,
            sampling=sampling,
            known=answered,
            on_discard=on_discard,
        )
    if spec.mode is Mode.TOPIC_TREE:
        from datagen_svc.topic_tree import TopicTreeSource

        return TopicTreeSource(
            client=client,
            topic=spec.topic,
            depth=spec.topic_tree.depth,
            breadth=spec.topic_tree.breadth,
            sampling=sampling,
            known=answered,
            state_path=state_dir / "topic_tree.json",
            target_rows=spec.num_rows,
        )
    return SelfInstructSource(
        client=client,
        topic=spec.topic,
        seed_examples=spec.seed_examples,
        sampling=sampling,
        known=answered,
    )
