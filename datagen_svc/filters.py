"""The checks a row passes on its way into a dataset, in order, and what they dropped.

A generation job (and a curate job, which filters an existing dataset) runs each
row through `RowChecks`:

1. on the instruction, before any answer is asked for (so a dropped row costs no call):
   exact duplicates (not in mode fixed), near duplicates (`near_dup.NearDupIndex`),
   overlap with evaluation sets (`decontam`);
2. on the answer: empty output (`quality.output_problem`), then the LLM judge (`judge`),
   which drops rows scoring below `min_score` and keeps rows it could not score,
   with the reason (a judge that is down is not a reason to lose data).

Rows are numbered by the job (its plan, or the source row in mode curate); every
reason that points at another row names its number. `report` is the FilterReport
the job shows: rows dropped per check, near-duplicate clusters, rows judged and
judge failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datagen_svc import decontam
from datagen_svc.near_dup import NearDupIndex
from datagen_svc.openai_client import EndpointError
from datagen_svc.quality import DUPLICATE_INSTRUCTION, Deduper, output_problem
from datagen_svc.spec import FilterSettings
from synthtune import records
from synthtune.errors import InvalidArgument
from synthtune.paths import resolve_under

if TYPE_CHECKING:
    from datagen_svc.judge import Judge, Verdict

# FilterReport.dropped_by keys.
DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near_duplicate"
CONTAMINATED = "contaminated"
OUTPUT = "output"
JUDGE = "judge"
EVOLUTION = "evolution"


@dataclass(frozen=True)
class Rejection:
    check: str  # one of the keys above
    reason: str  # for people; names the twin or eval row where there is one


@dataclass(frozen=True)
class Judged:
    """The judge's word on a kept row: a verdict, or why there is none."""

    verdict: Verdict | None
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return self.verdict.as_json() if self.verdict else {"error": self.error}


@dataclass
class Report:
    dropped_by: dict[str, int] = field(default_factory=dict)
    judged: int = 0
    judge_failures: int = 0

    def count(self, check: str) -> None:
        self.dropped_by[check] = self.dropped_by.get(check, 0) + 1


class RowChecks:
    def __init__(
        self,
        *,
        settings: FilterSettings,
        dedupe: bool,
        eval_sets: list[decontam.EvalIndex],
        judge: Judge | None,
        report: dict[str, Any] | None = None,
    ):
        self._deduper = Deduper() if dedupe else None
        self._near = NearDupIndex(threshold=settings.near_dup.threshold) if settings.near_dup.enabled else None
        self._eval_sets = eval_sets
        self._overlap = settings.decontam.threshold
        self._judge = judge
        self._min_score = settings.judge.min_score
        saved = report or {}
        self._report = Report(
            dropped_by=dict(saved.get("dropped_by", {})),
            judged=saved.get("judged", 0),
            judge_failures=saved.get("judge_failures", 0),
        )

    @property
    def judging(self) -> bool:
        return self._judge is not None

    def restore(self, kept: list[tuple[int, str]]) -> None:
        """On resume: the rows already kept, as (row number, instruction), so repeats of them are caught."""
        for key, instruction in kept:
            if self._deduper is not None:
                self._deduper.admit(instruction)
            if self._near is not None:
                self._near.admit(key, instruction)

    def check_instruction(self, key: int, instruction: str) -> Rejection | None:
        """Why this instruction can't be a row, or None (and then it counts as taken until `release`)."""
        if self._deduper is not None and not self._deduper.admit(instruction):
            return self._drop(DUPLICATE, DUPLICATE_INSTRUCTION)
        for index in self._eval_sets:
            if found := decontam.contamination(instruction, index, threshold=self._overlap, index=key):
                self._release_dedupe(instruction)
                return self._drop(CONTAMINATED, found.reason)
        if self._near is not None and (twin := self._near.admit(key, instruction)):
            self._release_dedupe(instruction)
            return self._drop(NEAR_DUPLICATE, twin.reason)
        return None

    def release(self, key: int, instruction: str) -> None:
        """Nothing was kept for this row after all: its instruction may come back."""
        self._release_dedupe(instruction)
        if self._near is not None:
            self._near.remove(key)

    def check_output(self, output: str | None) -> Rejection | None:
        if problem := output_problem(output):
            return self._drop(OUTPUT, problem)
        return None

    async def judge(self, *, instruction: str, output: str, system: str) -> tuple[Judged, Rejection | None]:
        """Score a row. A row below min_score is a Rejection; a row the judge failed on is kept, with why.

        A fatal endpoint error (bad token, unknown model) propagates: every row would fail the same way.
        """
        from datagen_svc.judge import JudgeError

        assert self._judge is not None
        try:
            verdict = await self._judge.score(instruction=instruction, output=output, system=system)
        except (JudgeError, EndpointError) as exc:
            if isinstance(exc, EndpointError) and exc.fatal:
                raise
            self._report.judge_failures += 1
            reason = exc.reason if isinstance(exc, JudgeError) else exc.message
            return Judged(verdict=None, error=reason), None
        self._report.judged += 1
        judged = Judged(verdict=verdict)
        if verdict.mean < self._min_score:
            return judged, self._drop(
                JUDGE, f"judge mean score {verdict.mean:.2f} is below {self._min_score:g}: {verdict.reason}"
            )
        return judged, None

    def drop(self, check: str, reason: str) -> Rejection:
        """Count a rejection decided elsewhere (e.g. a failed evolution)."""
        return self._drop(check, reason)

    def report(self) -> dict[str, Any]:
        """The FilterReport as JSON (what job.json and the events hold)."""
        return {
            "dropped_by": dict(sorted(self._report.dropped_by.items())),
            "near_dup_clusters": len(self._near.clusters) if self._near is not None else 0,
            "judged": self._report.judged,
            "judge_failures": self._report.judge_failures,
        }

    def _drop(self, check: str, reason: str) -> Rejection:
        self._report.count(check)
        return Rejection(check=check, reason=reason)

    def _release_dedupe(self, instruction: str) -> None:
        if self._deduper is not None:
            self._deduper.forget(instruction)


def load_eval_sets(data_root: Path, settings: FilterSettings) -> list[decontam.EvalIndex]:
    """One n-gram index per evaluation file. Raises InvalidArgument naming a path that is missing or bad."""
    indexes = []
    for i, relpath in enumerate(settings.decontam.eval_paths):
        indexes.append(
            decontam.build_eval_index(
                read_instructions(data_root, relpath, field=f"filters.decontam.eval_paths[{i}]"),
                n=settings.decontam.ngram,
                name=relpath,
            )
        )
    return indexes


def read_instructions(data_root: Path, relpath: str, *, field: str) -> list[str]:
    """The instruction of every row of a JSONL file under the data root (a chat row's last user turn)."""
    return [row_instruction(row) for row in read_rows(data_root, relpath, field=field)]


def read_rows(data_root: Path, relpath: str, *, field: str) -> list[dict[str, Any]]:
    """Every row of a JSONL dataset under the data root, checked; InvalidArgument names `field` otherwise."""
    path = resolve_under(data_root, relpath, field=field)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InvalidArgument(f"{field}: {relpath} does not exist under the data root.", field=field) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{field}: {relpath} cannot be read ({exc}).", field=field) from None
    records.require_valid(lines, field_name=field)
    return list(records.iter_rows(lines))


def row_instruction(row: dict[str, Any]) -> str:
    return records.to_instruction(row)["instruction"]
