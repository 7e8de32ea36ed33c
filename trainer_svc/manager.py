"""Runs from request to result: validate, queue, train in a child process, report.

One run trains at a time (one per device); the others wait in the queue, in
order. A run's child process reports JSON events on a pipe; the manager turns
them into the run's numbered event log and state. If the child raises, the run
fails with its error, and the service keeps serving.

Resume (trainer_svc.checkpoints): a run whose child died without an error of its own
(a signal: OOM, a node going away; or torchrun's exit when one of its ranks did), or
that was training when the service stopped, goes back to the head of the queue and
resumes from its newest checkpoint, at most `max_auto_resumes` times; without a
checkpoint it fails as before (killed, or interrupted). Queued runs carry on after a
restart. A failed run keeps its checkpoints for `failed_checkpoints_hours`, so that it can be
resumed by hand, then the scheduler deletes them.

The kubeflow launcher (trainer_svc.kubeflow) trains a run as a TrainJob in other pods
instead of a child process: events come through the run folder, a Failed job fails (or
resumes) the run with node 0's last log lines, cancel deletes the job. The job does not
depend on this service: a restarted service follows a run's TrainJob again where it left
off (re-attach) instead of resuming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from synthtune.errors import FailedPrecondition, InvalidArgument, SynthtuneError, Unavailable
from synthtune.eventlog import Event, follow
from synthtune.files import atomic_write_bytes
from synthtune.paths import validate_name
from trainer_svc.checkpoints import checkpoint_step, checkpoints_dir, latest_checkpoint, remove_checkpoints
from trainer_svc.child import CANCEL_FILE
from trainer_svc.config import TrainerSettings
from trainer_svc.event_file import CHILD_EVENTS_FILE
from trainer_svc.export import remove_stale_exports
from trainer_svc.metrics import Throughput
from trainer_svc.runs import INTERRUPTED, TERMINAL, Run, RunState, RunStore

logger = logging.getLogger(__name__)

MAX_BASE_MODEL_CHARS = 200
_BASE_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
WATCH_POLL_S = 1.0
# What an "eval" event carries into the run's log (the proto's EvalMetrics).
EVAL_FIELDS = ("step", "max_steps", "epoch", "eval_loss", "eval_mean_token_accuracy", "eval_exact_match",
               "eval_chrf", "eval_judge_score", "metric", "is_best", "runtime_s", "generation_s")
CHECKPOINT_SWEEP_S = 3600.0


@dataclass
class RunRequest:
    """What a caller asks for; hyperparameters hold only the fields they set."""

    base_model: str
    datasets: list[str]
    lora: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    distributed: dict[str, Any] = field(default_factory=dict)
    adapter_name: str = ""
    merge_full_model: bool = False
    # The exact versions of `datasets` ({"path", "name", "version", "sha256"}); see RunConfig.
    dataset_refs: list[dict[str, Any]] = field(default_factory=list)
    # A separate eval split and its versions (RunConfig.eval_datasets): nothing is held out then.
    eval_datasets: list[str] = field(default_factory=list)
    eval_dataset_refs: list[dict[str, Any]] = field(default_factory=list)


class RunManager:
    def __init__(self, *, settings: TrainerSettings, train_jobs: Any = None):
        """`train_jobs`: a trainer_svc.kubeflow.TrainJobs (the kubeflow launcher; made here when None)."""
        self.settings = settings
        self._jobs = train_jobs
        if self._jobs is None and settings.launcher == "kubeflow":
            from trainer_svc.kubeflow import TrainJobs

            self._jobs = TrainJobs(settings)
        self.store = RunStore(settings.data_root)
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._current: asyncio.subprocess.Process | None = None
        self._current_run: Run | None = None
        self._cancel_requested: set[str] = set()
        self._scheduler: asyncio.Task | None = None
        self._closing = False
        self._throughput = Throughput()

    # -- life cycle ---------------------------------------------------------------------------

    def recover(self) -> None:
        """Fail runs a previous service left running; queue the queued ones again; drop half exports."""
        for name in remove_stale_exports(self.settings.data_root):
            logger.warning("removed an unfinished export", extra={"folder": name})
        interrupted = []
        for run in self.store.load():
            if run.state == RunState.QUEUED:
                self._queue.append(run.run_id)
            else:
                interrupted.append(run)
        for run in interrupted:
            if self._jobs is not None and run.job_name and run.state == RunState.RUNNING:
                # Its TrainJob trains on without us: follow it again, first in line.
                self._queue.appendleft(run.run_id)
                logger.info("following a run's TrainJob again", extra={"run_id": run.run_id, "job": run.job_name})
                continue
            if not self._resume_after_crash(run, why="the trainer service stopped while it was training"):
                self.store.set_state(run, RunState.FAILED, error=INTERRUPTED)
                logger.warning("run interrupted by a service restart", extra={"run_id": run.run_id})

    def remove_expired_checkpoints(self, *, now: datetime | None = None) -> None:
        """Failed runs keep their checkpoints `failed_checkpoints_hours` for a resume by hand, then lose them."""
        cutoff = (now or datetime.now(UTC)) - timedelta(hours=self.settings.failed_checkpoints_hours)
        for run in self.store.list():
            folder = checkpoints_dir(self.settings.data_root, run.run_id)
            if run.state == RunState.FAILED and run.updated_at <= cutoff and folder.exists():
                remove_checkpoints(folder)
                logger.info("removed a failed run's checkpoints", extra={"run_id": run.run_id})

    def start_scheduler(self) -> None:
        self._scheduler = asyncio.create_task(self._schedule(), name="run-scheduler")

    async def shutdown(self) -> None:
        """Stop the scheduler and the running child; its run is failed as interrupted."""
        self._closing = True
        if self._scheduler:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        run, proc = self._current_run, self._current
        if proc and proc.returncode is None:
            proc.kill()
            await proc.wait()
        # A run with a checkpoint stays "running" on disk: the next start resumes it (recover);
        # one whose TrainJob trains on is followed again.
        if run and run.state not in TERMINAL and self._checkpoint_of(run) is None and not (
                self._jobs is not None and run.job_name and run.state == RunState.RUNNING):
            self.store.set_state(run, RunState.FAILED, error=INTERRUPTED)

    # -- requests -----------------------------------------------------------------------------

    async def start(self, request: RunRequest) -> Run:
        """Validate (state validating), then queue. Bad input raises and leaves nothing behind."""
        if self._closing:
            raise Unavailable("the trainer is shutting down; try again shortly.")
        _check_base_model(request.base_model)
        if request.adapter_name:
            validate_name(request.adapter_name, field="adapter_name")
        run = Run(run_id=uuid.uuid4().hex, base_model=request.base_model)
        config = self._run_config(run.run_id, request)
        self.store.add(run)
        try:
            from trainer_svc import training  # heavy: keep it out of service start-up

            plan = await asyncio.to_thread(training.validate_run, config, **self._training_machines())
            self._check_launcher(plan.resolved.distributed)
            if self._jobs is not None:
                await asyncio.to_thread(self._jobs.check_runtime)
        except BaseException:
            self.store.forget(run)
            raise
        atomic_write_bytes(self.store.run_dir(run.run_id) / "config.json", json.dumps(config, indent=1).encode())
        self._record_plan(run, plan.to_dict())
        self.store.set_state(run, RunState.QUEUED)
        self._queue.append(run.run_id)
        self._wake.set()
        return run

    async def cancel(self, run_id: str) -> Run:
        run = self.store.get(run_id)
        if run.state in TERMINAL:
            raise FailedPrecondition(f"run {run_id} already {run.state}; nothing to cancel.", field="run_id")
        if run.state == RunState.QUEUED and run_id in self._queue:
            self._queue.remove(run_id)
            self.store.set_state(run, RunState.CANCELLED, error="cancelled by request")
            return run
        self._cancel_requested.add(run_id)
        if self._jobs is not None:  # deleting the TrainJob stops every node; the follower then ends the run
            if self._current_run is run and run.job_name:
                self.store.append(run, "log", {"level": "info", "message": (
                    f"cancel requested; deleting TrainJob {run.job_name}")})
                await self._delete_train_job(run)
            return run
        if self._current_run is run and self._current and self._current.returncode is None:
            # Every process of the run sees the file (torchrun: they agree on the step to stop at);
            # a single process is also told by SIGTERM.
            atomic_write_bytes(self.store.run_dir(run_id) / CANCEL_FILE, b"cancel\n")
            if self.settings.launcher == "local":
                self._current.send_signal(signal.SIGTERM)  # the child stops within one step
            asyncio.get_running_loop().call_later(self.settings.cancel_grace_s, self._kill_if_still, run_id)
            self.store.append(run, "log", {"level": "info", "message": "cancel requested; stopping after this step"})
        return run

    async def resume(self, run_id: str) -> Run:
        """Queue a failed run again (by request): from its newest checkpoint, or from the start."""
        if self._closing:
            raise Unavailable("the trainer is shutting down; try again shortly.")
        run = self.store.get(run_id)
        if run.state != RunState.FAILED:
            raise FailedPrecondition(f"run {run_id} is {run.state}; only a failed run can be resumed.",
                                     field="run_id")
        checkpoint = self._checkpoint_of(run)
        where = f"from step {checkpoint_step(checkpoint)}" if checkpoint else "from the start (it has no checkpoint)"
        self.store.append(run, "log", {"level": "info", "message": f"resume requested: it goes on {where}"})
        self.store.set_state(run, RunState.QUEUED)
        self._queue.append(run.run_id)
        self._wake.set()
        return run

    def get(self, run_id: str) -> Run:
        return self.store.get(run_id)

    def list(self) -> list[Run]:
        return self.store.list()

    def queue_position(self, run: Run) -> int:
        return self._queue.index(run.run_id) + 1 if run.run_id in self._queue else 0

    async def watch(self, run_id: str, *, after_seq: int) -> AsyncIterator[Event]:
        run = self.store.get(run_id)
        async for event in follow(self.store.log(run_id), after_seq=after_seq,
                                  finished=lambda: run.state in TERMINAL, poll_s=WATCH_POLL_S):
            yield event

    # -- scheduling and the child process -----------------------------------------------------

    async def _schedule(self) -> None:
        while True:
            while not self._queue:
                self.remove_expired_checkpoints()  # after every run, and hourly while idle
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=CHECKPOINT_SWEEP_S)
            run = self.store.get(self._queue.popleft())
            try:
                await self._train(run)
            except Exception:  # noqa: BLE001 - one broken run must not stop the queue
                logger.exception("run failed to start", extra={"run_id": run.run_id})
                if run.state not in TERMINAL:
                    self.store.set_state(run, RunState.FAILED, error="the training process could not be started")

    async def _train(self, run: Run) -> None:
        if self._jobs is not None:
            await self._train_on_kubeflow(run)
        else:
            await self._train_in_processes(run)
        self._cancel_requested.discard(run.run_id)

    async def _train_in_processes(self, run: Run) -> None:
        run_dir = self.store.run_dir(run.run_id)
        (run_dir / CANCEL_FILE).unlink(missing_ok=True)  # from an earlier attempt of a resumed run
        command, env = self._child_command(run)
        with (run_dir / "child.log").open("ab") as child_log:
            proc = await asyncio.create_subprocess_exec(
                *command, str(run_dir), stdout=asyncio.subprocess.PIPE, stderr=child_log, limit=1 << 24,
                env=env,
            )
        self._current, self._current_run = proc, run
        self._throughput = Throughput()
        run.pid = proc.pid
        self.store.set_state(run, RunState.RUNNING)
        error = ""
        try:
            async for line in proc.stdout:
                event = json.loads(line)
                if event.get("type") == "error":
                    error = event["message"]
                else:
                    self._on_child_event(run, event)
            returncode = await proc.wait()
        finally:
            self._current = self._current_run = None
            self._throughput.ended()
        if run.state not in TERMINAL:
            if returncode < 0:
                crash = f"the training process was killed by {signal.Signals(-returncode).name}"
            else:  # no error of its own: it crashed (under torchrun, a rank killed makes torchrun exit 1)
                crash = f"the training process exited with code {returncode}"
            self._finish_without_result(run, error=error, crash=crash)

    def _finish_without_result(self, run: Run, *, error: str, crash: str) -> None:
        """End a run that reported no result: cancelled, failed with its `error`, or resumed after a `crash`."""
        if run.run_id in self._cancel_requested:  # killed after the grace: its checkpoints are of no use
            remove_checkpoints(checkpoints_dir(self.settings.data_root, run.run_id))
            self.store.set_state(run, RunState.CANCELLED, error="cancelled by request")
        elif error:
            self.store.set_state(run, RunState.FAILED, error=error)
        elif not self._resume_after_crash(run, why=crash):
            self.store.set_state(run, RunState.FAILED, error=crash)

    # -- the kubeflow launcher ------------------------------------------------------------------

    async def _train_on_kubeflow(self, run: Run) -> None:
        """Submit the run's TrainJob (or follow the one it has, after a restart) until it ends."""
        from trainer_svc import kubeflow

        run_dir = self.store.run_dir(run.run_id)
        if run.state == RunState.RUNNING and run.job_name:
            self.store.append(run, "log", {"level": "info", "message": f"following TrainJob {run.job_name} again"})
        elif not await self._submit_train_job(run, run_dir):
            return
        self._current_run = run
        self._throughput = Throughput()
        if run.run_id in self._cancel_requested:  # asked for while the job was being made
            await self._delete_train_job(run)
        error = ""

        def take(events: list[dict[str, Any]], offset: int) -> None:
            nonlocal error
            for event in events:
                if event.get("type") == "error":
                    error = event.get("message", "")
                elif run.state not in TERMINAL:
                    self._on_child_event(run, event)
            run.events_offset = offset
            self.store.save(run)

        try:
            status = await kubeflow.follow(
                self._jobs, run.job_name, run_dir / CHILD_EVENTS_FILE, offset=run.events_offset, on_events=take,
                poll_s=self.settings.kubeflow_poll_s, patience_s=self.settings.kubeflow_api_patience_s)
        except Unavailable as exc:
            status = kubeflow.JobStatus("lost", message=exc.message)
        finally:
            self._current_run = None
            self._throughput.ended()
        if run.state == RunState.SUCCEEDED and status.state == "complete":
            await self._delete_train_job(run)  # nothing left to look at; a failed one is kept for kubectl
        if run.state in TERMINAL:
            return
        where = f"TrainJob {run.job_name}"
        if status.state == "failed":
            tail = await asyncio.to_thread(self._jobs.node0_log_tail, run.job_name)
            why = f" ({status.reason}: {status.message})" if status.reason or status.message else ""
            error = error and f"{error}\nnode 0's last log lines:\n{tail}"
            crash = f"{where} failed{why}; node 0's last log lines:\n{tail}"
        elif status.state == "gone":
            crash = f"{where} was deleted before it finished"
        elif status.state == "lost":  # no resume: a second job could train beside the first
            self.store.set_state(run, RunState.FAILED, error=(
                f"{status.message}. {where} may still be running: kubectl delete trainjob {run.job_name} "
                f"-n {self._jobs.namespace}"))
            return
        else:
            crash = f"{where} completed without a result from node 0"
        self._finish_without_result(run, error=error, crash=crash)

    async def _submit_train_job(self, run: Run, run_dir: Path) -> bool:
        """Create the run's TrainJob and mark the run running; False (the run failed) if it can't be made."""
        from trainer_svc import kubeflow

        (run_dir / CANCEL_FILE).unlink(missing_ok=True)  # from an earlier attempt of a resumed run
        (run_dir / CHILD_EVENTS_FILE).unlink(missing_ok=True)
        nodes = int(run.distributed.get("num_nodes") or 1)
        processes = int(run.distributed.get("processes_per_node") or 1)
        name = kubeflow.train_job_name(run.run_id)
        manifest = kubeflow.train_job_manifest(self.settings, name=name, run_id=run.run_id, run_dir=run_dir.resolve(),
                                               num_nodes=nodes, processes_per_node=processes, environ=dict(os.environ))
        try:
            await asyncio.to_thread(self._jobs.create, manifest)
        except SynthtuneError as exc:
            logger.warning("TrainJob not created", extra={"run_id": run.run_id, "error": exc.message})
            self.store.set_state(run, RunState.FAILED, error=f"the run's TrainJob could not be created: {exc.message}")
            return False
        run.job_name, run.events_offset = name, 0
        self.store.set_state(run, RunState.RUNNING)
        self.store.append(run, "log", {"level": "info", "message": (
            f"TrainJob {name} created in namespace {self._jobs.namespace}: {nodes} node(s) x {processes} "
            f"process(es), runtime {self.settings.kubeflow_runtime}")})
        return True

    async def _delete_train_job(self, run: Run) -> None:
        try:
            await asyncio.to_thread(self._jobs.delete, run.job_name)
        except SynthtuneError as exc:  # the follower ends the run when the job is gone; say why it isn't
            self.store.append(run, "log", {"level": "warning", "message": f"could not delete TrainJob "
                                                                         f"{run.job_name}: {exc.message}"})

    def _training_machines(self) -> dict[str, Any]:
        """What validation should assume about the machines a run trains on (None: this one)."""
        if self._jobs is None:
            return {}
        gpus = self.settings.kubeflow_gpus_per_node
        return {"available_devices": ("cuda", "cpu") if gpus else ("cpu",), "gpus_per_node": gpus}

    def _check_launcher(self, distributed: Any) -> None:
        """Refuse what this service's launcher cannot start, before the run is queued."""
        if self.settings.launcher == "local" and distributed.world_size > 1:
            raise InvalidArgument(
                f"processes_per_node={distributed.processes_per_node} and num_nodes={distributed.num_nodes} need "
                "several processes: this trainer's launcher is 'local' (one process); set "
                "SYNTHTUNE_TRAINER_LAUNCHER=torchrun.", field="processes_per_node")
        if self.settings.launcher == "torchrun" and distributed.num_nodes > 1:
            raise InvalidArgument(
                f"num_nodes={distributed.num_nodes}: the torchrun launcher trains on this machine only "
                "(num_nodes=1).", field="num_nodes")

    def _child_command(self, run: Run) -> tuple[list[str], dict[str, str]]:
        """How the run's training process(es) start: one child, or torchrun with one per rank."""
        env = {**os.environ, **self.settings.tracking_environment}
        if self.settings.launcher == "local":
            return [sys.executable, "-m", "trainer_svc.child"], env
        processes = int(run.distributed.get("processes_per_node") or 1)
        # Each rank gets its share of the cores: more threads than cores slows training several-fold.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
        # The child asks the kernel to kill it when the service dies (die_with_parent); torchrun
        # doesn't, so it starts through trainer_svc.guard, which does and then becomes torchrun.
        return [sys.executable, "-m", "trainer_svc.guard", sys.executable, "-m", "torch.distributed.run",
                "--standalone", "--nnodes=1", f"--nproc-per-node={processes}", "-m", "trainer_svc.child"], env

    def _checkpoint_of(self, run: Run) -> Path | None:
        return latest_checkpoint(checkpoints_dir(self.settings.data_root, run.run_id))

    def _resume_after_crash(self, run: Run, *, why: str) -> bool:
        """Queue `run` first again to resume from its newest checkpoint; False when it can't be."""
        checkpoint = self._checkpoint_of(run)
        if checkpoint is None or run.resumes >= self.settings.max_auto_resumes:
            return False
        run.resumes += 1
        step = checkpoint_step(checkpoint)
        self.store.append(run, "log", {"level": "warning", "message": (
            f"{why}; it resumes from step {step} (automatic resume {run.resumes} of "
            f"{self.settings.max_auto_resumes})")})
        self.store.set_state(run, RunState.QUEUED)
        self._queue.appendleft(run.run_id)
        self._wake.set()
        logger.warning("run resumes from a checkpoint", extra={"run_id": run.run_id, "step": step, "why": why})
        return True

    def _kill_if_still(self, run_id: str) -> None:
        if self._current_run and self._current_run.run_id == run_id and self._current.returncode is None:
            logger.warning("run did not stop after cancel; killing it", extra={"run_id": run_id})
            self._current.kill()

    def _on_child_event(self, run: Run, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "log":
            self.store.append(run, "log", {"level": event.get("level", "info"), "message": event.get("message", "")})
        elif kind == "started":
            run.max_steps = int(event.get("max_steps") or 0)
            self.store.append(run, "log", {"level": "info", "message": (
                f"training {run.max_steps} steps on {event.get('device')} ({event.get('dtype')}) in "
                f"{event.get('world_size', 1)} process(es), effective batch {event.get('effective_batch_size')}, "
                f"{event.get('train_rows')} train / {event.get('eval_rows')} eval rows, "
                f"{event.get('wrapped_modules')} LoRA modules, {event.get('trainable_params')} trainable parameters")})
        elif kind == "step":
            run.step, run.max_steps, run.epoch = int(event["step"]), int(event["max_steps"]), float(event["epoch"] or 0)
            self._throughput.step(event)
            self.store.append(run, "step", {k: event.get(k) for k in (
                "step", "max_steps", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s", "eta_s")})
        elif kind == "eval":
            self.store.append(run, "eval", {k: event.get(k) for k in EVAL_FIELDS})
        elif kind == "resumed":
            run.resumed_from_step = int(event.get("step") or 0)
            self.store.save(run)
            self.store.append(run, "resumed", {"step": run.resumed_from_step, "resumes": run.resumes})
        elif kind == "exported":
            run.adapter_name, run.adapter_path = event["name"], event["path"]
            self.store.save(run)
            self.store.append(run, "exported", {
                "adapter_name": event["name"], "adapter_path": event["path"],
                "weights_sha256": event.get("weights_sha256", ""), "merged_model_path": event.get("merged_path") or "",
            })
        elif kind == "finished":
            run.metrics = event.get("metrics") or {}
            self._throughput.finished(run.metrics)
            status = RunState.SUCCEEDED if event.get("status") == "succeeded" else RunState.CANCELLED
            self.store.set_state(run, status, error="" if status == RunState.SUCCEEDED else "cancelled by request")
        # "validated" and "cancelled" add nothing the parent doesn't already know.

    # -- helpers ------------------------------------------------------------------------------

    def _run_config(self, run_id: str, request: RunRequest) -> dict[str, Any]:
        local = self.settings.models_root / request.base_model
        return {
            "run_id": run_id,
            "data_root": str(self.settings.data_root.resolve()),
            "datasets": list(request.datasets),
            "base_model_id": request.base_model,
            "base_model_path": str(local.resolve()) if (local / "config.json").is_file() else None,
            "adapter_name": request.adapter_name or None,
            "lora": dict(request.lora),
            "training": {"checkpoint_steps": self.settings.checkpoint_steps,
                         "checkpoint_keep": self.settings.checkpoint_keep,
                         **request.training, "merge_full_model": request.merge_full_model},
            "device": dict(request.device),
            "distributed": dict(request.distributed),
            "dataset_refs": [dict(ref) for ref in request.dataset_refs],
            "eval_datasets": list(request.eval_datasets),
            "eval_dataset_refs": [dict(ref) for ref in request.eval_dataset_refs],
        }

    def _record_plan(self, run: Run, plan: dict[str, Any]) -> None:
        data = plan["data"]
        run.plan = plan
        run.prompt_format = data["prompt_format"]
        run.datasets = [_dataset_report(d) for d in data["datasets"]]
        run.eval_datasets = [_dataset_report(d) for d in data.get("eval_datasets", [])]
        run.train_rows, run.eval_rows, run.truncated_rows = data["train_rows"], data["eval_rows"], data["truncated_rows"]
        self.store.save(run)
        self.store.append(run, "log", {"level": "info", "message": (
            f"validated: {data['rows']} rows ({run.prompt_format} format), {run.train_rows} train / "
            f"{run.eval_rows} eval, {run.truncated_rows} longer than max_length {data['max_length']}")})
        for warning in data.get("warnings", []):
            self.store.append(run, "log", {"level": "warning", "message": warning})


def _dataset_report(data: dict[str, Any]) -> dict[str, Any]:
    """A DatasetFile of the plan, as the run (and the proto's DatasetReport) keeps it."""
    return {k: data[k] for k in ("path", "sha256", "rows", "format", "size_bytes", "name", "version") if k in data}


def _check_base_model(base_model: str) -> None:
    if not base_model:
        raise InvalidArgument("base_model is required, e.g. microsoft/Phi-3-mini-4k-instruct.", field="base_model")
    if len(base_model) > MAX_BASE_MODEL_CHARS:  # a folder name under the models root: the file system's limit
        raise InvalidArgument(f"base_model is longer than {MAX_BASE_MODEL_CHARS} characters.", field="base_model")
    if ".." in base_model or not _BASE_MODEL_RE.match(base_model):
        raise InvalidArgument(
            f"base_model {base_model!r} must be a model id like 'org/name' or a folder name under the models "
            "root: letters, digits, '.', '-', '_', at most one '/', no '..'.", field="base_model")
