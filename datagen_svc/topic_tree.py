"""Topic tree: a topic split into subtopics, level by level, then instructions per leaf.

The endpoint first expands the topic into `breadth` subtopics per node, `depth` levels
down (a JSON reply; `response_format` json_schema "subtopics" where the endpoint supports
it, plain text with robust parsing where it rejects it). Siblings are deduplicated and a
node that yields nothing stays a leaf. The finished tree is written to the job's state file
and reused as-is on resume, so it is paid for once per job.

Then instructions are asked of each leaf in batches (planning's "instructions" schema, the
prompt naming the whole path "topic > sub > leaf"), visiting leaves round-robin up to an
equal quota of ceil(target_rows / leaves) so coverage is even (asked for more, to replace
rows lost to dropped answers, every leaf's quota grows by one). Repeats and instructions
already in the dataset are skipped; a leaf whose batches keep bringing nothing new is
barren and left out.

Cost: expansion_calls(depth, breadth) = 1 + b + ... + b^(d-1) calls once per job (fewer
when nodes are barren, one more where the endpoint first rejects response_format), then
about one planning call per planning.MAX_BATCH rows, plus the generator's answer call per row.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen_svc.openai_client import ChatClient, EndpointError
from datagen_svc.planning import (
    MAX_BATCH,
    QUOTED_ITEMS,
    SCHEMA_REJECTED_STATUSES,
    Planned,
    PlanningError,
    instructions_schema,
    parse_instructions,
    shorten,
)
from datagen_svc.quality import normalise_instruction
from synthtune.files import atomic_write_bytes

logger = logging.getLogger(__name__)

DEFAULT_DEPTH = 2
MAX_DEPTH = 4
DEFAULT_BREADTH = 3
MAX_BREADTH = 10
MAX_LEAVES = 1000
# Subtopics are short phrases; the schema bound keeps a weak model from writing essays.
SUBTOPIC_MAX_CHARS = 100
# Batches in a row that bring a leaf nothing new before it counts as barren.
MAX_EMPTY_LEAF_BATCHES = 3
STATE_VERSION = 1
PATH_SEPARATOR = " > "


def leaf_count(depth: int, breadth: int) -> int:
    """The most leaves a tree of this shape has: breadth ** depth."""
    return breadth**depth


def expansion_calls(depth: int, breadth: int) -> int:
    """The most expansion calls building the tree costs: 1 + b + ... + b^(d-1)."""
    return sum(breadth**level for level in range(depth))


def subtopics_schema(count: int) -> dict[str, Any]:
    """An OpenAI `response_format` asking for {"subtopics": [1..count short strings]}."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "subtopics",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "subtopics": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": SUBTOPIC_MAX_CHARS},
                        "minItems": 1,
                        "maxItems": count,
                    }
                },
                "required": ["subtopics"],
                "additionalProperties": False,
            },
        },
    }


@dataclass
class _Leaf:
    path: list[str]
    buffer: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)
    reserved: int = 0  # handed out, or promised to a caller now waiting for a batch
    taken: int = 0  # handed out
    empty_batches: int = 0
    barren: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class TopicTreeSource:
    """Instructions spread evenly over the leaves of a topic tree; safe for concurrent `next()`.

    The first `next()` builds (or loads) the tree; it raises PlanningError when the topic
    yields no subtopics at all. Returns None once every leaf is barren, and raises
    PlanningError if that happens before any instruction was found (the generator asks only
    while it needs rows, so quotas grow evenly past their first share). EndpointError
    from an instruction batch propagates, as in SelfInstructSource.

    `target_rows` is how many rows this source should supply (on resume: those still missing),
    so the quotas sum to at least it.
    """

    def __init__(
        self,
        *,
        client: ChatClient,
        topic: str,
        depth: int = DEFAULT_DEPTH,
        breadth: int = DEFAULT_BREADTH,
        sampling: dict[str, Any],
        known: list[str],
        state_path: Path,
        target_rows: int,
    ):
        if not topic.strip():
            raise ValueError("a topic tree needs a topic")
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be 1..{MAX_DEPTH}, not {depth}")
        if not 1 <= breadth <= MAX_BREADTH:
            raise ValueError(f"breadth must be 1..{MAX_BREADTH}, not {breadth}")
        if leaf_count(depth, breadth) > MAX_LEAVES:
            raise ValueError(f"depth {depth} and breadth {breadth} give more than {MAX_LEAVES} leaves")
        if target_rows < 1:
            raise ValueError("target_rows must be at least 1")
        self._client = client
        self._topic = topic.strip()
        self._depth = depth
        self._breadth = breadth
        # As in SelfInstructSource: real sampling for diversity, and no answers' max_tokens.
        self._sampling = {k: v for k, v in sampling.items() if k != "max_tokens"} | {"temperature": 1.0}
        self._seen = {normalise_instruction(k) for k in known}
        self._state_path = state_path
        self._target_rows = target_rows
        self._use_schema = True
        self._tree_lock = asyncio.Lock()
        self._root: dict[str, Any] | None = None
        self._leaves: list[_Leaf] | None = None
        self._quota = 0
        self._cursor = 0
        self._handed = 0

    async def tree(self) -> dict[str, Any]:
        """The topic tree, {"name": ..., "children": [...]}, built or loaded on first use."""
        await self._ensure_tree()
        assert self._root is not None
        return self._root

    async def next(self, *, wanted: int) -> Planned | None:
        leaves = await self._ensure_tree()
        while True:
            leaf = self._pick(leaves)
            if leaf is None:
                if self._handed == 0:
                    raise PlanningError(
                        f"the endpoint gave no new instructions for any of the {len(leaves)} subtopics of "
                        f"{self._topic!r}"
                    )
                return None
            leaf.reserved += 1
            try:
                instruction = await self._take(leaf)
            except BaseException:
                leaf.reserved -= 1
                raise
            if instruction is not None:
                self._handed += 1
                return Planned(instruction, {"strategy": "topic_tree", "topic_path": list(leaf.path)})
            leaf.reserved -= 1  # the leaf went barren while we waited: try the next one

    def _pick(self, leaves: list[_Leaf]) -> _Leaf | None:
        """The next leaf round-robin that still has quota to give, or None when every leaf is barren.

        The generator asks only while it still needs rows, so when every leaf has met its quota
        (rows lost to dropped answers) each leaf's quota grows by one: replacements stay even.
        """
        for _ in range(2):
            for step in range(len(leaves)):
                index = (self._cursor + step) % len(leaves)
                leaf = leaves[index]
                if not leaf.barren and leaf.reserved < self._quota:
                    self._cursor = index + 1
                    return leaf
            if all(leaf.barren for leaf in leaves):
                return None
            self._quota += 1
        return None

    async def _take(self, leaf: _Leaf) -> str | None:
        async with leaf.lock:  # one batch per leaf at a time; other leaves ask in parallel
            while not leaf.buffer:
                if leaf.barren:
                    return None
                batch = await self._ask_instructions(leaf, max(1, min(MAX_BATCH, self._quota - leaf.taken)))
                fresh = []
                for item in batch:
                    key = normalise_instruction(item)
                    if key not in self._seen:
                        self._seen.add(key)
                        fresh.append(item)
                leaf.buffer.extend(fresh)
                leaf.recent = (leaf.recent + fresh)[-QUOTED_ITEMS:]
                leaf.empty_batches = 0 if fresh else leaf.empty_batches + 1
                if leaf.empty_batches >= MAX_EMPTY_LEAF_BATCHES:
                    logger.info("subtopic is barren", extra={"topic_path": PATH_SEPARATOR.join(leaf.path)})
                    leaf.barren = True
            leaf.taken += 1
            return leaf.buffer.pop(0)

    # -- the tree ----------------------------------------------------------------------------

    async def _ensure_tree(self) -> list[_Leaf]:
        if self._leaves is not None:
            return self._leaves
        async with self._tree_lock:
            if self._leaves is None:
                self._root = self._load() or await self._build()
                paths = _leaf_paths(self._root)
                self._quota = math.ceil(self._target_rows / len(paths))
                self._leaves = [_Leaf(path) for path in paths]
        return self._leaves

    def _load(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self._state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("topic tree state unreadable; building it again", extra={"reason": str(exc)})
            return None
        shape = (state.get("topic"), state.get("depth"), state.get("breadth"))
        if state.get("version") != STATE_VERSION or shape != (self._topic, self._depth, self._breadth):
            logger.warning("topic tree state is for another tree; building it again")
            return None
        return state["tree"]

    async def _build(self) -> dict[str, Any]:
        root: dict[str, Any] = {"name": self._topic, "children": []}
        level = [(root, [self._topic])]
        for _ in range(self._depth):
            # The first level is one call, so a rejected response_format is learnt before fanning out.
            # Every call of a level ends before a fatal error is raised: none is left running.
            expanded = await asyncio.gather(
                *(self._expand(path) for _, path in level), return_exceptions=True
            )
            if failure := next((e for e in expanded if isinstance(e, BaseException)), None):
                raise failure
            next_level = []
            for (node, path), names in zip(level, expanded, strict=True):
                node["children"] = [{"name": name, "children": []} for name in names]
                next_level += [(child, [*path, child["name"]]) for child in node["children"]]
            level = next_level
        if not root["children"]:
            raise PlanningError(f"the endpoint gave no subtopics for {self._topic!r}")
        state = {
            "version": STATE_VERSION,
            "topic": self._topic,
            "depth": self._depth,
            "breadth": self._breadth,
            "tree": root,
        }
        atomic_write_bytes(self._state_path, json.dumps(state, ensure_ascii=False, indent=1).encode())
        return root

    async def _expand(self, path: list[str]) -> list[str]:
        """Up to `breadth` new subtopics of the node at `path`; [] leaves it a leaf."""
        try:
            reply = await self._ask_json(
                _expansion_prompt(path, self._breadth), subtopics_schema(self._breadth)
            )
        except EndpointError as exc:
            if exc.fatal:
                raise
            if len(path) == 1:
                raise PlanningError(f"could not split {self._topic!r} into subtopics: {exc.message}") from exc
            logger.info("subtopic expansion failed; the node stays a leaf", extra={"reason": exc.message})
            return []
        ancestors = {normalise_instruction(p) for p in path}
        names: list[str] = []
        seen: set[str] = set()
        for name in parse_instructions(reply):
            name = " ".join(name.split())
            key = normalise_instruction(name)
            if len(name) > SUBTOPIC_MAX_CHARS or key in ancestors or key in seen:
                continue
            seen.add(key)
            names.append(name)
        return names[: self._breadth]

    # -- endpoint calls ----------------------------------------------------------------------

    async def _ask_instructions(self, leaf: _Leaf, count: int) -> list[str]:
        return parse_instructions(
            await self._ask_json(_instructions_prompt(leaf, count), instructions_schema(count))
        )

    async def _ask_json(self, prompt: str, schema: dict[str, Any]) -> str:
        """The reply's text, with structured output while the endpoint accepts it."""
        messages = [{"role": "user", "content": prompt}]
        if self._use_schema:
            try:
                result = await self._client.chat(
                    messages=messages, sampling=self._sampling, response_format=schema
                )
                return result.content
            except EndpointError as exc:
                if exc.fatal or exc.status not in SCHEMA_REJECTED_STATUSES:
                    raise
                logger.info(
                    "endpoint rejected response_format; using plain text", extra={"reason": exc.message}
                )
                self._use_schema = False
        result = await self._client.chat(messages=messages, sampling=self._sampling)
        return result.content


def _leaf_paths(root: dict[str, Any]) -> list[list[str]]:
    """Every leaf's path, interleaved across branches: consecutive leaves differ as high up the
    tree as they can, so a target smaller than the leaf count still spans every top-level branch."""
    found: list[tuple[tuple[int, ...], list[str]]] = []

    def walk(node: dict[str, Any], place: tuple[int, ...], above: list[str]) -> None:
        path = [*above, node["name"]]
        if not node["children"]:
            found.append((place, path))
        for index, child in enumerate(node["children"]):
            walk(child, (*place, index), path)

    walk(root, (), [])
    found.sort(key=lambda item: item[0][::-1])
    return [path for _, path in found]


def _expansion_prompt(path: list[str], breadth: int) -> str:
    return "\n".join(
        [
            "You are planning a dataset for training an AI assistant, as a tree of topics.",
            f"List {breadth} distinct subtopics of: {PATH_SEPARATOR.join(path)}.",
            "Each is a short phrase of a few words, narrower than its parent and different from the others.",
            'Reply with only a JSON object: {"subtopics": ["...", "..."]}',
        ]
    )


def _instructions_prompt(leaf: _Leaf, count: int) -> str:
    lines = [
        "You are helping build a dataset of instructions for training an AI assistant.",
        f"Write {count} new, diverse, self-contained instruction{'s' if count > 1 else ''} "
        f"about: {PATH_SEPARATOR.join(leaf.path)}.",
        f"Each should be specifically about {leaf.path[-1]!r} within that topic.",
    ]
    if leaf.recent:
        lines.append("Do not repeat these:")
        lines += [f"- {shorten(r)}" for r in leaf.recent]
    lines.append("Vary the kind of task, its length and its difficulty.")
    lines.append('Reply with only a JSON object: {"instructions": ["...", "..."]}')
    return "\n".join(lines)
