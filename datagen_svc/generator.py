"""Run one generation job: instructions in, a JSONL dataset out, nothing lost on the way.

Rows are appended (and flushed) to `datasets/<name>.jsonl.partial` as they
arrive, and each row's metadata (its provenance and the judge's verdict, never
part of the training row) to `datasets/<name>.meta.jsonl.partial`, line for line.
When the target is reached both are published atomically (the metadata first;
the dataset is the commit point) and the dataset's sha256 and size recorded. A
cancel or crash leaves the partial files intact; a later run of the same job
(resume) reads them back, skips what they already hold, and continues up to the target.

Every row passes `filters.RowChecks` (duplicates, decontamination, near
duplicates, empty output, the judge); mode curate takes its rows from an
existing dataset instead of asking a teacher, so it only filters.

The target is rows kept. Dropped and failed rows are replaced by new attempts,
within a budget, so a misbehaving endpoint ends the job instead of looping.
In from_instructions mode the caller's list bounds the job: when it runs out
the job succeeds with the rows it has (the counts say how many were dropped).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from datagen_svc.filters import (
    EVOLUTION,
    OUTPUT,
    Rejection,
    RowChecks,
    load_eval_sets,
    read_rows,
    row_instruction,
)
from datagen_svc.jobs import EventKind, Job, JobStore
from datagen_svc.metrics import ROWS_DROPPED, ROWS_FAILED, ROWS_KEPT
from datagen_svc.openai_client import ChatClient, EndpointError
from datagen_svc.planning import InstructionSource, PlanningError, make_source
from datagen_svc.quality import make_row
from datagen_svc.spec import GenerationSpec, Mode
from synthtune import jsonl, records
from synthtune.errors import InvalidArgument
from synthtune.files import atomic_write_bytes, fsync_dir, sha256_file

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.25
MAX_REPORTED_INSTRUCTION = 500


class GenerationFailed(Exception):
    """The job cannot go on; `reason` is shown to people. Rows written so far are kept."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DatasetFiles:
    final: Path
    partial: Path
    meta_final: Path
    meta_partial: Path

    @classmethod
    def under(cls, data_root: Path, dataset_path: str) -> DatasetFiles:
        final = data_root / dataset_path
        meta = final.with_name(metadata_name(final.name))
        return cls(
            final=final,
            partial=final.with_name(final.name + ".partial"),
            meta_final=meta,
            meta_partial=meta.with_name(meta.name + ".partial"),
        )


def metadata_name(dataset_file: str) -> str:
    """datasets/x.jsonl's metadata lives in datasets/x.meta.jsonl."""
    return dataset_file.removesuffix(".jsonl") + ".meta.jsonl"


def metadata_path(dataset_path: str) -> str:
    return str(Path(dataset_path).with_name(metadata_name(Path(dataset_path).name)))


def attempt_budget(remaining: int) -> int:
    """Endpoint calls one run may spend to keep `remaining` rows: room for drops, but finite."""
    return 2 * remaining + 16


def failure_limit(concurrency: int) -> int:
    """Rows failing in a row that mean the endpoint is down rather than unlucky."""
    return max(5, concurrency)


async def generate(
    *,
    job: Job,
    spec: GenerationSpec,
    store: JobStore,
    client: ChatClient | None,
    data_root: Path,
    judge_client: ChatClient | None = None,
) -> None:
    """Run `job` to its target and publish the dataset, or raise GenerationFailed.

    `client` is the teacher (None in mode curate), `judge_client` the judge (None: no judge).
    Updates job.counts, job.usage, job.judge_usage, job.report, job.sha256 and job.size_bytes,
    and emits progress, row_rejected, judge_failed and dataset_written events; state changes
    are the caller's.
    """
    files = DatasetFiles.under(data_root, job.dataset_path)
    run = _Run(
        job=job, spec=spec, store=store, client=client, judge_client=judge_client, files=files,
        data_root=data_root,
    )
    await run.execute()


class _Run:
    def __init__(
        self,
        *,
        job: Job,
        spec: GenerationSpec,
        store: JobStore,
        client: ChatClient | None,
        judge_client: ChatClient | None,
        files: DatasetFiles,
        data_root: Path,
    ):
        self.job = job
        self.spec = spec
        self.store = store
        self.client = client
        self.judge_client = judge_client
        self.files = files
        self.data_root = data_root
        self.in_flight = 0
        self.attempts = 0
        self.failed_in_a_row = 0
        self.failed_this_run = 0
        self.judge_failed_in_a_row = 0
        self.exhausted = False
        self.last_progress = 0.0
        self.messages_prefix = (
            [{"role": "system", "content": spec.system_prompt}] if spec.system_prompt else []
        )
        self.sampling = spec.sampling.as_request_fields()
        self.base_usage = dataclasses.replace(job.usage)
        self.base_judge_usage = dataclasses.replace(job.judge_usage)

    async def execute(self) -> None:
        existing = jsonl.recover(self.files.partial, check=records.row_format)
        metadata = recover_metadata(self.files, rows=len(existing))
        answered = [row_instruction(row) for row in existing]
        self.job.counts.kept = len(existing)
        remaining = self.job.target_rows - len(existing)
        self.budget = attempt_budget(remaining)
        self.next_index = self.job.counts.kept + self.job.counts.dropped + self.job.counts.failed
        self.checks = self._checks()
        # Rows of earlier runs keep their numbers, so reasons naming them stay true.
        self.checks.restore(
            [(meta.get("index", -1 - i), text) for i, (meta, text) in enumerate(zip(metadata, answered))]
        )
        self.source: InstructionSource = make_source(
            spec=self.spec,
            client=self.client,
            answered=answered,
            state_dir=self.store.folder / self.job.job_id,
            on_discard=self._discard_evolution,
            curate_rows=self._curate_rows(metadata) if self.spec.mode is Mode.CURATE else None,
        )
        logger.info(
            "generation running",
            extra={"job_id": self.job.job_id, "kept": len(existing), "target_rows": self.job.target_rows},
        )
        self.writer = jsonl.Appender(self.files.partial)
        self.meta_writer = jsonl.Appender(self.files.meta_partial)
        close_error: OSError | None = None
        try:
            await self._work(workers=self._workers(remaining))
        finally:
            # Both closed and the last progress sent even when the final flush fails (a full disk):
            # that error is raised after, unless the work already raised its own.
            for writer in (self.writer, self.meta_writer):
                try:
                    writer.close()
                except OSError as exc:
                    close_error = close_error or exc
            if self.job.counts.kept == 0:
                # No rows to keep: don't let an empty file hold the dataset name.
                self.files.partial.unlink(missing_ok=True)
                self.files.meta_partial.unlink(missing_ok=True)
            self._progress(force=True)
        if close_error is not None:
            raise close_error
        self._finish()

    def _checks(self) -> RowChecks:
        try:
            eval_sets = load_eval_sets(self.data_root, self.spec.filters)
        except InvalidArgument as exc:
            raise GenerationFailed(f"cannot read an evaluation set: {exc.message}") from None
        judge = None
        if self.judge_client is not None:
            from datagen_svc.judge import Criterion, Judge

            rubric = tuple(Criterion(name, description) for name, description in self.spec.filters.judge.rubric)
            judge = Judge(client=self.judge_client, rubric=rubric)
        return RowChecks(
            settings=self.spec.filters,
            # Fixed mode repeats one instruction by design, so only the other modes deduplicate.
            dedupe=self.spec.mode is not Mode.FIXED,
            eval_sets=eval_sets,
            judge=judge,
            report=self.job.report,
        )

    def _curate_rows(self, metadata: list[dict]) -> list[tuple[int, dict, dict]]:
        """(row number, row, its metadata) of the source rows still to decide, in order."""
        try:
            rows = read_rows(self.data_root, self.spec.source_path, field="source_path")
        except InvalidArgument as exc:
            raise GenerationFailed(f"cannot read the source dataset: {exc.message}") from None
        source_meta = read_metadata(self.data_root / metadata_path(self.spec.source_path), rows=len(rows))
        decided = {meta["index"] for meta in metadata if isinstance(meta.get("index"), int)}
        decided |= {
            event.data["index"]
            for event in self.store.log(self.job.job_id).after(0)
            if event.kind == EventKind.ROW_REJECTED and event.data["kind"] == "dropped"
        }
        source = {"path": self.spec.source_path}
        # The target (num_rows, or every row) bounds the rows kept, as in the other modes.
        return [
            (i, row, {**meta, "source": {**source, "row": i}})
            for i, (row, meta) in enumerate(zip(rows, source_meta))
            if i not in decided
        ]

    def _workers(self, remaining: int) -> int:
        if self.spec.mode is Mode.CURATE:
            # No teacher: the judge's calls are the only waits, so its concurrency rules.
            return self.spec.filters.judge.limits.concurrency if self.checks.judging else 1
        return min(self.spec.limits.concurrency, max(remaining, 1))

    async def _work(self, *, workers: int) -> None:
        failure: GenerationFailed | None = None
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(self._worker())
        except* GenerationFailed as errors:
            failure = errors.exceptions[0]
        if failure is not None:
            raise failure

    def _may_start(self) -> bool:
        return (
            not self.exhausted
            and self.job.counts.kept + self.in_flight < self.job.target_rows
            and self.attempts < self.budget
        )

    async def _worker(self) -> None:
        while self._may_start():
            self.in_flight += 1  # reserve before any await so workers never overshoot the target
            try:
                await self._one_row()
            finally:
                self.in_flight -= 1

    async def _one_row(self) -> None:
        wanted = self.job.target_rows - self.job.counts.kept
        try:
            planned = await self.source.next(wanted=wanted)
        except PlanningError as exc:
            raise GenerationFailed(exc.reason) from None
        except EndpointError as exc:
            raise GenerationFailed(f"could not get instructions from the endpoint: {exc.message}") from None
        if planned is None:
            self.exhausted = True
            return
        instruction = planned.instruction
        index = planned.index if planned.index is not None else self._take_index()
        if rejection := self.checks.check_instruction(index, instruction):
            self._reject(index, instruction, kind="dropped", rejection=rejection)
            return
        if planned.row is not None:
            row = planned.row
            fields = records.to_instruction(row)
            output, system = fields["output"], fields.get("system", "")
        else:
            answered = await self._answer(index, instruction)
            if answered is None:
                return
            row, output, system = answered, answered["output"], self.spec.system_prompt
        metadata = {"index": index, **planned.provenance}
        judge_error = ""
        if self.checks.judging:
            judged, rejection = await self.checks.judge(instruction=instruction, output=output, system=system)
            self._count_usage()
            metadata["judge"], judge_error = judged.as_json(), judged.error
            if rejection:
                self.judge_failed_in_a_row = 0
                self.checks.release(index, instruction)
                self._reject(index, instruction, kind="dropped", rejection=rejection)
                return
        self.writer.append(row)
        self.meta_writer.append(metadata)
        self.job.counts.kept += 1
        ROWS_KEPT.inc()
        self._progress()
        if self.checks.judging:
            self._after_judging(index, instruction, judge_error)  # the row is kept first, judged or not

    async def _answer(self, index: int, instruction: str) -> dict | None:
        """The teacher's row for an instruction, or None when it was dropped or failed (and reported)."""
        assert self.client is not None
        self.attempts += 1
        messages = [*self.messages_prefix, {"role": "user", "content": instruction}]
        try:
            result = await self.client.chat(messages=messages, sampling=self.sampling)
        except EndpointError as exc:
            if exc.fatal:
                raise GenerationFailed(exc.message) from None
            self.checks.release(index, instruction)  # nothing kept for it: it may come back
            self._reject(index, instruction, kind="failed", rejection=Rejection("endpoint", exc.message))
            self.failed_this_run += 1
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= failure_limit(self.spec.limits.concurrency):
                raise GenerationFailed(
                    f"the endpoint kept failing ({self.failed_in_a_row} rows in a row); last error: {exc.message}"
                ) from None
            return None
        self.failed_in_a_row = 0
        self._count_usage()
        if rejection := self.checks.check_output(result.content):
            self.checks.release(index, instruction)
            self._reject(index, instruction, kind="dropped", rejection=rejection)
            return None
        try:
            return make_row(instruction=instruction, output=result.content, system=self.spec.system_prompt)
        except ValueError as exc:  # the shared schema refused it: drop, never write a bad row
            self.checks.release(index, instruction)
            self._reject(index, instruction, kind="dropped", rejection=self.checks.drop(OUTPUT, f"invalid row: {exc}"))
            return None

    def _after_judging(self, index: int, instruction: str, error: str) -> None:
        if not error:
            self.judge_failed_in_a_row = 0
            return
        self.store.append(
            self.job.job_id,
            EventKind.JUDGE_FAILED,
            {"index": index, "instruction": instruction[:MAX_REPORTED_INSTRUCTION], "reason": error},
        )
        self.judge_failed_in_a_row += 1
        if self.judge_failed_in_a_row >= failure_limit(self.spec.filters.judge.limits.concurrency):
            # A judge that fails every row is down or unfit; don't fill the dataset with unjudged rows.
            raise GenerationFailed(
                f"the judge kept failing ({self.judge_failed_in_a_row} rows in a row; they are kept unjudged, "
                f"see the judge_failed events); last error: {error}. Resume once the judge works."
            )

    def _take_index(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    def _discard_evolution(self, candidate: str, reason: str) -> None:
        """A failed evolution (mode evol_instruct): reported like a dropped row, with its reason."""
        rejection = self.checks.drop(EVOLUTION, reason)
        self._reject(self._take_index(), candidate, kind="dropped", rejection=rejection)

    def _count_usage(self) -> None:
        # The client's totals include planning calls; earlier runs of the job are in the base.
        for client, usage, base in (
            (self.client, self.job.usage, self.base_usage),
            (self.judge_client, self.job.judge_usage, self.base_judge_usage),
        ):
            if client is not None:
                usage.prompt_tokens = base.prompt_tokens + client.prompt_tokens
                usage.completion_tokens = base.completion_tokens + client.completion_tokens

    def _reject(self, index: int, instruction: str, *, kind: str, rejection: Rejection) -> None:
        if kind == "dropped":
            self.job.counts.dropped += 1
            ROWS_DROPPED.inc()
        else:
            self.job.counts.failed += 1
            ROWS_FAILED.inc()
        self.store.append(
            self.job.job_id,
            EventKind.ROW_REJECTED,
            {
                "index": index,
                "instruction": instruction[:MAX_REPORTED_INSTRUCTION],
                "kind": kind,
                "reason": rejection.reason,
                "check": rejection.check,
            },
        )
        self._progress()

    def _progress(self, *, force: bool = False) -> None:
        self._count_usage()
        self.job.report = self.checks.report()
        now = time.monotonic()
        if not force and now - self.last_progress < PROGRESS_INTERVAL_S:
            return
        self.last_progress = now
        self.store.save(self.job)
        self.store.append(self.job.job_id, EventKind.PROGRESS, self.job.progress_data())

    def _finish(self) -> None:
        counts = self.job.counts
        if counts.kept < self.job.target_rows and self.exhausted and self.failed_this_run:
            # Drops are final, but failed rows only lacked an answer: a resume asks again.
            raise GenerationFailed(
                f"the instructions ran out with {counts.kept} of {self.job.target_rows} rows: "
                f"{self.failed_this_run} failed on endpoint errors (see the row_rejected events). "
                "Resume to retry them."
            )
        if counts.kept < self.job.target_rows and not self.exhausted:
            raise GenerationFailed(
                f"stopped after {self.attempts} requests with {counts.kept} of {self.job.target_rows} rows usable "
                f"({counts.dropped} dropped, {counts.failed} failed; see the row_rejected events). "
                "Resume to try again."
            )
        if counts.kept == 0:
            raise GenerationFailed("no usable rows: every instruction was dropped or failed.")
        self.job.sha256, self.job.size_bytes = publish(self.files)
        self.job.metadata_path = metadata_path(self.job.dataset_path)
        self.store.save(self.job)
        self.store.append(
            self.job.job_id,
            EventKind.DATASET_WRITTEN,
            {
                "dataset_path": self.job.dataset_path,
                "sha256": self.job.sha256,
                "size_bytes": self.job.size_bytes,
                "counts": self.job.progress_data()["counts"],
                "metadata_path": self.job.metadata_path,
                "report": self.job.report,
            },
        )
        logger.info(
            "dataset written",
            extra={"job_id": self.job.job_id, "rows": counts.kept, "sha256": self.job.sha256},
        )


def publish(files: DatasetFiles) -> tuple[str, int]:
    """Atomically turn the partial files into the dataset and its metadata, never replacing a dataset.

    Returns (sha256, size). The metadata goes first, so a published dataset always has it.
    A hard link fails if the name is taken, where a rename would overwrite.
    """
    if files.meta_partial.exists():
        os.replace(files.meta_partial, files.meta_final)
    try:
        os.link(files.partial, files.final)
    except FileExistsError:
        raise GenerationFailed(
            f"{files.final.name} appeared while the job ran; the rows stay in {files.partial.name}."
        ) from None
    except OSError:
        # Filesystems without hard links: check, then rename (a narrow race, but no torn file).
        if files.final.exists():
            raise GenerationFailed(f"{files.final.name} appeared while the job ran.") from None
        os.replace(files.partial, files.final)
    else:
        files.partial.unlink()
    fsync_dir(files.final.parent)
    return sha256_file(files.final), files.final.stat().st_size


def recover_metadata(files: DatasetFiles, *, rows: int) -> list[dict]:
    """The metadata lines of the `rows` recovered rows, exactly one each.

    The row is written before its metadata, so a crash can leave one row without its line:
    it gets a bare one (its number unknown). Lines beyond the rows are cut off.
    """
    lines = [m if isinstance(m, dict) else {} for m in jsonl.recover(files.meta_partial)]
    if len(lines) != rows:
        lines = (lines + [{} for _ in range(rows - len(lines))])[:rows]
        data = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in lines).encode()
        atomic_write_bytes(files.meta_partial, data)
    return lines


def read_metadata(path: Path, *, rows: int) -> list[dict]:
    """A published dataset's metadata lines, one per row ({} where it has none, e.g. an upload)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    lines = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            item = {}
        lines.append(item if isinstance(item, dict) else {})
    return (lines + [{} for _ in range(rows - len(lines))])[:rows]
