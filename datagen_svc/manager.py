"""The datagen use cases: start, resume, cancel, get, list and watch jobs.

One JobManager per process. It runs each job as an asyncio task (at most
`max_running_jobs` at once; the others stay queued), holds the endpoint token
only in memory for the job's lifetime, and on start-up marks jobs that a
crash left running as failed with reason "interrupted", ready to resume.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

from datagen_svc.config import DatagenSettings
from datagen_svc.filters import read_rows
from datagen_svc.generator import DatasetFiles, GenerationFailed, generate, metadata_path
from datagen_svc.jobs import INTERRUPTED, RESUMABLE, TERMINAL, EventKind, Job, JobState, JobStore
from datagen_svc.openai_client import ChatClient, ClientConfig
from datagen_svc.spec import Endpoint, GenerationSpec, Limits, Mode, validate_spec
from synthtune import jsonl, records
from synthtune.errors import AlreadyExists, FailedPrecondition, InvalidArgument, Unavailable
from synthtune.eventlog import Event, follow
from synthtune.files import is_no_space, sha256_file
from synthtune.logs import forget_secret, register_secret
from synthtune.paths import resolve_under

logger = logging.getLogger(__name__)

CANCELLED_BY_REQUEST = "cancelled by request"
WATCH_POLL_S = 1.0


class JobManager:
    def __init__(
        self, *, settings: DatagenSettings, client_factory: Callable[[ClientConfig], ChatClient] = ChatClient
    ):
        self.settings = settings
        self.data_root = Path(settings.data_root).resolve()
        self.store = JobStore(self.data_root)
        self._client_factory = client_factory
        self.outbound = settings.outbound_policy
        self._tasks: dict[str, asyncio.Task] = {}
        self._stop_reasons: dict[str, str] = {}
        self._running_slots = asyncio.Semaphore(settings.max_running_jobs)
        self._secret_users: Counter[str] = Counter()
        self._closing = False
        self.active_watches = 0

    # -- lifecycle -------------------------------------------------------------------------

    def recover(self) -> None:
        """Load every job; mark those a crash left queued or running as failed ("interrupted")."""
        (self.data_root / "datasets").mkdir(parents=True, exist_ok=True)
        for job in self.store.load():
            files = DatasetFiles.under(self.data_root, job.dataset_path)
            if files.final.exists() and (
                not files.partial.exists() or os.path.samefile(files.partial, files.final)
            ):
                # The crash hit after the atomic publish (a hard link) but before the job was saved.
                files.partial.unlink(missing_ok=True)
                if files.meta_partial.exists():
                    os.replace(files.meta_partial, files.meta_final)
                job.sha256, job.size_bytes = sha256_file(files.final), files.final.stat().st_size
                job.counts.kept = jsonl.count_rows(files.final)
                job.metadata_path = metadata_path(job.dataset_path)
                self.store.set_state(job, JobState.SUCCEEDED)
                continue
            job.counts.kept = len(jsonl.recover(files.partial, check=records.row_format))
            # Rows written after the last progress event are kept too: say so before the state
            # change, so a follower (the control plane) shows the counts a resume goes on from.
            self.store.append(job.job_id, EventKind.PROGRESS, job.progress_data())
            self.store.set_state(job, JobState.FAILED, error=INTERRUPTED)
            logger.warning("job was interrupted", extra={"job_id": job.job_id, "kept": job.counts.kept})

    async def shutdown(self, *, timeout_s: float = 10.0) -> None:
        """Stop every job: state failed/"interrupted", partial rows flushed, resumable later."""
        self._closing = True
        tasks = list(self._tasks.items())
        for job_id, task in tasks:
            self._stop_reasons[job_id] = INTERRUPTED
            task.cancel()
        if tasks:
            await asyncio.wait([t for _, t in tasks], timeout=timeout_s)
            logger.info("jobs stopped for shutdown", extra={"jobs": len(tasks)})

    # -- use cases -------------------------------------------------------------------------

    def start(self, spec: GenerationSpec) -> Job:
        """Validate and queue a new job; raises InvalidArgument or AlreadyExists."""
        self._refuse_when_closing()
        spec = validate_spec(
            spec, max_rows=self.settings.max_rows, max_concurrency=self.settings.max_concurrency
        )
        self._check_outbound(spec)
        if spec.dataset_name.endswith(".meta"):
            raise InvalidArgument(
                "dataset_name must not end in .meta: datasets/<name>.meta.jsonl holds a dataset's row metadata.",
                field="dataset_name",
            )
        dataset_path = f"datasets/{spec.dataset_name}.jsonl"
        resolve_under(self.data_root, dataset_path, field="dataset_name")
        self._check_name_free(spec.dataset_name, dataset_path)
        target_rows = self._check_inputs(spec)
        job = self.store.create(
            dataset_name=spec.dataset_name,
            dataset_path=dataset_path,
            target_rows=target_rows,
            params=spec.public_params(),
        )
        logger.info(
            "generation queued",
            extra={
                "job_id": job.job_id,
                "dataset_name": job.dataset_name,
                "mode": str(spec.mode),
                "target_rows": job.target_rows,
            },
        )
        self._launch(job, spec)
        return job

    def resume(self, job_id: str, *, token: str, judge_token: str = "") -> Job:
        """Queue a failed or cancelled job again; it keeps its rows and continues to its target."""
        self._refuse_when_closing()
        job = self.store.get(job_id)
        if job.state not in RESUMABLE:
            raise FailedPrecondition(
                f"job {job_id} is {job.state}; only failed or cancelled jobs can be resumed.", field="job_id"
            )
        other = self._holder_of(job.dataset_name, exclude=job_id)
        if other is not None or (self.data_root / job.dataset_path).exists():
            raise FailedPrecondition(
                f"dataset {job.dataset_name!r} was taken by "
                + (f"job {other.job_id}" if other else "another dataset")
                + " since this job stopped; start a new job under another name.",
                field="job_id",
            )
        try:
            spec = GenerationSpec.from_params(job.params, token=token, judge_token=judge_token)
            spec = validate_spec(
                spec, max_rows=self.settings.max_rows, max_concurrency=self.settings.max_concurrency
            )
        except InvalidArgument as exc:
            if exc.field == "endpoint.token":
                raise InvalidArgument(exc.message.replace("endpoint.token", "token"), field="token") from None
            if exc.field == "filters.judge.endpoint.token":
                raise InvalidArgument(
                    exc.message.replace("filters.judge.endpoint.token", "judge_token"), field="judge_token"
                ) from None
            raise FailedPrecondition(
                f"job {job_id} can no longer run here: {exc.message}", field="job_id"
            ) from None
        # Checked again: the policy or what the names resolve to may have changed since the start.
        self._check_outbound(spec)
        self.store.set_state(job, JobState.QUEUED)
        logger.info("generation resumed", extra={"job_id": job.job_id, "kept": job.counts.kept})
        self._launch(job, spec)
        return job

    async def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job, keeping its rows; cancelling a cancelled job is a no-op."""
        job = self.store.get(job_id)
        if job.state is JobState.CANCELLED:
            return job
        if job.state in TERMINAL:
            raise FailedPrecondition(f"job {job_id} is already {job.state}.", field="job_id")
        task = self._tasks.get(job_id)
        if task is not None:
            self._stop_reasons[job_id] = CANCELLED_BY_REQUEST
            task.cancel()
            await asyncio.wait([task])
        return job

    def get(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def list(self) -> list[Job]:
        return self.store.list()

    async def watch(self, job_id: str, *, after_seq: int) -> AsyncIterator[Event]:
        """Events with seq > after_seq, then live ones; ends once caught up with a finished job."""
        job = self.store.get(job_id)
        self.active_watches += 1
        try:
            async for event in follow(self.store.log(job_id), after_seq=after_seq,
                                      finished=lambda: job.state in TERMINAL, poll_s=WATCH_POLL_S):
                yield event
        finally:
            self.active_watches -= 1

    # -- internals -------------------------------------------------------------------------

    def _holder_of(self, dataset_name: str, *, exclude: str = "") -> Job | None:
        """A job that owns `dataset_name`: active, or holding unfinished rows for it."""
        for job in self.store.list():
            if job.dataset_name != dataset_name or job.job_id == exclude:
                continue
            if (
                job.state not in TERMINAL
                or DatasetFiles.under(self.data_root, job.dataset_path).partial.exists()
            ):
                return job
        return None

    def _check_name_free(self, name: str, dataset_path: str) -> None:
        files = DatasetFiles.under(self.data_root, dataset_path)
        if files.final.exists():
            raise AlreadyExists(
                f"dataset {name!r} already exists ({dataset_path}); choose another dataset_name.",
                field="dataset_name",
            )
        holder = self._holder_of(name)
        if holder is not None:
            raise AlreadyExists(
                f"dataset {name!r} belongs to job {holder.job_id} ({holder.state}); "
                "resume that job or choose another dataset_name.",
                field="dataset_name",
            )
        if files.partial.exists():
            raise AlreadyExists(
                f"unfinished rows for {name!r} exist ({files.partial.name}); choose another dataset_name.",
                field="dataset_name",
            )

    def _check_inputs(self, spec: GenerationSpec) -> int:
        """The job's target rows, once the files it reads are known to exist and be valid.

        Mode curate's target is its source's row count (or num_rows, when smaller).
        """
        for i, relpath in enumerate(spec.filters.decontam.eval_paths):
            read_rows(self.data_root, relpath, field=f"filters.decontam.eval_paths[{i}]")
        if spec.mode is not Mode.CURATE:
            return spec.num_rows
        if spec.source_path == f"datasets/{spec.dataset_name}.jsonl":
            raise InvalidArgument("source_path is the dataset this job would write.", field="source_path")
        rows = len(read_rows(self.data_root, spec.source_path, field="source_path"))
        return min(spec.num_rows, rows) if spec.num_rows else rows

    def _check_outbound(self, spec: GenerationSpec) -> None:
        """InvalidArgument naming the field when the teacher's or the judge's URL is refused."""
        if spec.mode is not Mode.CURATE:
            self.outbound.check_url(spec.endpoint.base_url, field="endpoint.base_url")
        if spec.filters.judge.enabled:
            self.outbound.check_url(spec.filters.judge.endpoint.base_url, field="filters.judge.endpoint.base_url")

    def _refuse_when_closing(self) -> None:
        if self._closing:
            raise Unavailable("the datagen service is shutting down; try again shortly.")

    def _launch(self, job: Job, spec: GenerationSpec) -> None:
        self._tasks[job.job_id] = asyncio.create_task(self._run(job, spec), name=f"datagen-{job.job_id}")

    async def _run(self, job: Job, spec: GenerationSpec) -> None:
        tokens = (spec.endpoint.token, spec.filters.judge.endpoint.token)
        for token in tokens:
            self._hold_secret(token)
        try:
            async with self._running_slots:
                self.store.set_state(job, JobState.RUNNING)
                async with AsyncExitStack() as clients:
                    teacher = judge = None
                    if spec.mode is not Mode.CURATE:
                        teacher = await clients.enter_async_context(
                            self._client_factory(self._client_config(spec.endpoint, spec.limits))
                        )
                    if spec.filters.judge.enabled:
                        judge = await clients.enter_async_context(
                            self._client_factory(
                                self._client_config(spec.filters.judge.endpoint, spec.filters.judge.limits)
                            )
                        )
                    await generate(
                        job=job, spec=spec, store=self.store, client=teacher, judge_client=judge,
                        data_root=self.data_root,
                    )
                self.store.set_state(job, JobState.SUCCEEDED)
        except asyncio.CancelledError:
            reason = self._stop_reasons.pop(job.job_id, INTERRUPTED)
            if reason == CANCELLED_BY_REQUEST:
                self.store.set_state(job, JobState.CANCELLED, error=reason)
            else:
                self.store.set_state(job, JobState.FAILED, error=INTERRUPTED)
            logger.info(
                "generation stopped", extra={"job_id": job.job_id, "reason": reason, "kept": job.counts.kept}
            )
            # Cancelled on purpose by cancel() or shutdown(), which await us: finish normally.
        except GenerationFailed as exc:
            self.store.set_state(job, JobState.FAILED, error=exc.reason)
            logger.warning(
                "generation failed",
                extra={"job_id": job.job_id, "reason": exc.reason, "kept": job.counts.kept},
            )
        except Exception as exc:
            if is_no_space(exc):
                # Not a bug: the rows written so far are in the .partial file (a torn last line is cut
                # off at the resume), and a resume goes on from them.
                reason = (
                    f"no space left on the data root's disk while writing {job.dataset_path}; the rows "
                    "written so far are kept. Free some space there, then resume the job."
                )
                logger.warning("generation failed", extra={"job_id": job.job_id, "reason": reason})
            else:
                logger.exception("generation crashed", extra={"job_id": job.job_id})
                reason = f"internal error ({type(exc).__name__})"
            self.store.set_state(job, JobState.FAILED, error=reason)
        else:
            logger.info(
                "generation succeeded",
                extra={
                    "job_id": job.job_id,
                    "kept": job.counts.kept,
                    "dropped": job.counts.dropped,
                    "failed": job.counts.failed,
                },
            )
        finally:
            for token in tokens:
                self._release_secret(token)
            self._tasks.pop(job.job_id, None)

    def _client_config(self, endpoint: Endpoint, limits: Limits) -> ClientConfig:
        return ClientConfig(
            base_url=endpoint.base_url,
            model=endpoint.model,
            token=endpoint.token,
            skip_tls_verify=endpoint.skip_tls_verify,
            timeout_s=endpoint.request_timeout_s,
            max_retries=endpoint.max_retries,
            concurrency=limits.concurrency,
            requests_per_minute=limits.requests_per_minute,
            backoff_initial_s=self.settings.retry_initial_s,
            backoff_max_s=self.settings.retry_max_s,
            outbound=self.outbound,
        )

    def _hold_secret(self, token: str) -> None:
        # Belt and braces: mask the token in any log line while a job may touch it.
        if token:
            self._secret_users[token] += 1
            register_secret(token)

    def _release_secret(self, token: str) -> None:
        if not token:
            return
        self._secret_users[token] -= 1
        if self._secret_users[token] <= 0:
            del self._secret_users[token]
            forget_secret(token)
