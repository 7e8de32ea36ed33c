"""Run one generation job: instructions in, a JSONL dataset out, nothing lost on the way.

Rows are appended (and flushed) to `datasets/<name>.jsonl.partial` as they
arrive. When the target is reached the partial file is published atomically
as `datasets/<name>.jsonl` and its sha256 and size recorded. A cancel or crash
leaves the partial file intact; a later run of the same job (resume) reads it
back, skips what it already holds, and continues up to the target.

The target is rows kept. Dropped and failed rows are replaced by new attempts,
within a budget, so a misbehaving endpoint ends the job instead of looping.
In from_instructions mode the caller's list bounds the job: when it runs out
the job succeeds with the rows it has (the counts say how many were dropped).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from datagen_svc.jobs import EventKind, Job, JobStore
from datagen_svc.metrics import ROWS_DROPPED, ROWS_FAILED, ROWS_KEPT
from datagen_svc.openai_client import ChatClient, EndpointError
from datagen_svc.planning import InstructionSource, PlanningError, make_source
from datagen_svc.quality import DUPLICATE_INSTRUCTION, Deduper, make_row, output_problem
from datagen_svc.spec import GenerationSpec, Mode
from synthtune import jsonl, records
from synthtune.files import fsync_dir, sha256_file

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

    @classmethod
    def under(cls, data_root: Path, dataset_path: str) -> DatasetFiles:
        final = data_root / dataset_path
        return cls(final=final, partial=final.with_name(final.name + ".partial"))


def attempt_budget(remaining: int) -> int:
    """Endpoint calls one run may spend to keep `remaining` rows: room for drops, but finite."""
    return 2 * remaining + 16


def failure_limit(concurrency: int) -> int:
    """Rows failing in a row that mean the endpoint is down rather than unlucky."""
    return max(5, concurrency)


async def generate(
    *, job: Job, spec: GenerationSpec, store: JobStore, client: ChatClient, data_root: Path
) -> None:
    """Run `job` to its target and publish the dataset, or raise GenerationFailed.

    Updates job.counts, job.usage, job.sha256 and job.size_bytes, and emits
    progress, row_rejected and dataset_written events; state changes are the caller's.
    """
    files = DatasetFiles.under(data_root, job.dataset_path)
    run = _Run(job=job, spec=spec, store=store, client=client, files=files)
    await run.execute()


class _Run:
    def __init__(
        self, *, job: Job, spec: GenerationSpec, store: JobStore, client: ChatClient, files: DatasetFiles
    ):
        self.job = job
        self.spec = spec
        self.store = store
        self.client = client
        self.files = files
        self.in_flight = 0
        self.attempts = 0
        self.failed_in_a_row = 0
        self.failed_this_run = 0
        self.exhausted = False
        self.last_progress = 0.0
        self.messages_prefix = (
            [{"role": "system", "content": spec.system_prompt}] if spec.system_prompt else []
        )
        self.sampling = spec.sampling.as_request_fields()
        self.base_usage = dataclasses.replace(job.usage)

    async def execute(self) -> None:
        existing = jsonl.recover(self.files.partial, check=records.row_format)
        answered = [row["instruction"] for row in existing]
        self.job.counts.kept = len(existing)
        remaining = self.job.target_rows - len(existing)
        self.budget = attempt_budget(remaining)
        self.next_index = self.job.counts.kept + self.job.counts.dropped + self.job.counts.failed
        # Fixed mode repeats one instruction by design, so only the other modes deduplicate.
        self.deduper = None if self.spec.mode is Mode.FIXED else Deduper()
        for instruction in answered if self.deduper else ():
            self.deduper.admit(instruction)
        self.source: InstructionSource = make_source(spec=self.spec, client=self.client, answered=answered)
        logger.info(
            "generation running",
            extra={"job_id": self.job.job_id, "kept": len(existing), "target_rows": self.job.target_rows},
        )
        self.writer = jsonl.Appender(self.files.partial)
        try:
            await self._work(workers=min(self.spec.limits.concurrency, max(remaining, 1)))
        finally:
            self.writer.close()
            if self.job.counts.kept == 0:
                # No rows to keep: don't let an empty file hold the dataset name.
                self.files.partial.unlink(missing_ok=True)
            self._progress(force=True)
        self._finish()

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
            instruction = await self.source.next(wanted=wanted)
        except PlanningError as exc:
            raise GenerationFailed(exc.reason) from None
        except EndpointError as exc:
            raise GenerationFailed(f"could not get instructions from the endpoint: {exc.message}") from None
        if instruction is None:
            self.exhausted = True
            return
        index = self.next_index
        self.next_index += 1
        if self.deduper is not None and not self.deduper.admit(instruction):
            self._reject(index, instruction, kind="dropped", reason=DUPLICATE_INSTRUCTION)
            return
        self.attempts += 1
        messages = [*self.messages_prefix, {"role": "user", "content": instruction}]
        try:
            result = await self.client.chat(messages=messages, sampling=self.sampling)
        except EndpointError as exc:
            if exc.fatal:
                raise GenerationFailed(exc.message) from None
            if self.deduper is not None:
                self.deduper.forget(instruction)  # nothing kept for it: it may come back
            self._reject(index, instruction, kind="failed", reason=exc.message)
            self.failed_this_run += 1
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= failure_limit(self.spec.limits.concurrency):
                raise GenerationFailed(
                    f"the endpoint kept failing ({self.failed_in_a_row} rows in a row); last error: {exc.message}"
                ) from None
            return
        self.failed_in_a_row = 0
        self._count_usage()
        if problem := output_problem(result.content):
            self._reject(index, instruction, kind="dropped", reason=problem)
            return
        try:
            row = make_row(instruction=instruction, output=result.content, system=self.spec.system_prompt)
        except ValueError as exc:  # the shared schema refused it: drop, never write a bad row
            self._reject(index, instruction, kind="dropped", reason=f"invalid row: {exc}")
            return
        self.writer.append(row)
        self.job.counts.kept += 1
        ROWS_KEPT.inc()
        self._progress()

    def _count_usage(self) -> None:
        # The client's totals include planning calls; earlier runs of the job are in the base.
        self.job.usage.prompt_tokens = self.base_usage.prompt_tokens + self.client.prompt_tokens
        self.job.usage.completion_tokens = self.base_usage.completion_tokens + self.client.completion_tokens

    def _reject(self, index: int, instruction: str, *, kind: str, reason: str) -> None:
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
                "reason": reason,
            },
        )
        self._progress()

    def _progress(self, *, force: bool = False) -> None:
        self._count_usage()
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
        self.store.save(self.job)
        self.store.append(
            self.job.job_id,
            EventKind.DATASET_WRITTEN,
            {
                "dataset_path": self.job.dataset_path,
                "sha256": self.job.sha256,
                "size_bytes": self.job.size_bytes,
                "counts": self.job.progress_data()["counts"],
            },
        )
        logger.info(
            "dataset written",
            extra={"job_id": self.job.job_id, "rows": counts.kept, "sha256": self.job.sha256},
        )


def publish(files: DatasetFiles) -> tuple[str, int]:
    """Atomically turn the partial file into the dataset, never replacing an existing one.

    Returns (sha256, size). A hard link fails if the name is taken, where a rename would overwrite.
    """
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
