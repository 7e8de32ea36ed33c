"""The serving proxy's operations: load, unload, list, compare one prompt, compare a batch.

Plain async functions on a `ServingProxy`; the gRPC servicer only translates.
Errors are synthtune.errors types (with serving_proxy_svc.errors for the codes
that family lacks); the shared interceptor turns them into statuses.

Load, per replica: GET /v1/models (reachable? serves the adapter's base model?
already serving this name?), POST /v1/load_lora_adapter, then GET /v1/models
again to see it listed with the path sent. The same name from the same path is
an idempotent success; from another path it is ALREADY_EXISTS.

Replicas are called concurrently and each gets its own result. When every
replica fails the call fails with the first replica's error; when some
succeed it succeeds and the failed replicas carry their code and message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from serving_proxy_svc.adapters import Adapter, adapter_name_for_root, eval_split_path, inspect_adapter
from serving_proxy_svc.compare import (
    Sampling,
    SideSummary,
    chrf,
    exact_match,
    prompt_request,
    row_request,
    sampling_params,
    summarize,
)
from serving_proxy_svc.config import ProxySettings, normalize_target
from serving_proxy_svc.errors import Internal
from serving_proxy_svc.judge import (
    Judge,
    JudgeConfig,
    JudgeSummary,
    RowJudgement,
    check_bearer_token,
    not_judged,
    summarize_judgements,
)
from serving_proxy_svc.vllm_client import AdapterAlreadyLoaded, Completion, ModelCard, VllmClient
from synthtune.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, SynthtuneError
from synthtune.logs import forget_secret, register_secret
from synthtune.paths import resolve_under, validate_name
from synthtune.records import row_format

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Comparisons' model names remembered, one per (target, adapter, served name) compared lately.
_MAX_REMEMBERED = 1024
DATASET_DIRS = ("datasets", "adapters")
GREEDY = Sampling()  # nothing set: temperature 0 and the configured max_tokens
_REPORTED_LINE_ERRORS = 5


@dataclass(frozen=True)
class ReplicaResult:
    target: str
    ok: bool
    served_name: str
    code: str = ""
    message: str = ""
    already_loaded: bool = False


@dataclass(frozen=True)
class LoadResult:
    served_name: str
    replicas: list[ReplicaResult]


@dataclass(frozen=True)
class ServedModel:
    id: str
    root: str
    parent: str
    adapter_name: str  # the adapters/ folder when root maps back to the data root


@dataclass(frozen=True)
class TargetModels:
    target: str
    reachable: bool
    error: str = ""
    models: list[ServedModel] = field(default_factory=list)


@dataclass(frozen=True)
class CompareResult:
    base: Completion
    adapter: Completion
    prompt_format: str


@dataclass(frozen=True)
class CompareRow:
    index: int
    prompt: str
    reference: str
    base: Completion | None
    adapter: Completion | None
    base_exact: bool
    adapter_exact: bool
    base_chrf: float
    adapter_chrf: float
    error: str = ""
    judgement: RowJudgement | None = None  # with a judge


@dataclass(frozen=True)
class CompareSummary:
    rows: int
    base: SideSummary
    adapter: SideSummary
    dataset_path: str
    prompt_format: str
    failed_rows: int
    judge: JudgeSummary | None = None


class ServingProxy:
    """Holds the settings and one pooled vLLM client; safe to share between concurrent calls."""

    def __init__(self, settings: ProxySettings, client: VllmClient | None = None):
        self.settings = settings
        self.client = client or VllmClient(timeout_s=settings.vllm_timeout_s,
                                           generation_timeout_s=settings.vllm_generation_timeout_s)
        # (target, adapter, served_name) -> the (base, adapter) model names the last comparison's
        # /v1/models gave: the next comparison asks with them while it reads /v1/models again.
        self._compare_names: dict[tuple[str, str, str], tuple[str, str]] = {}
        if settings.vllm_token:  # masked for the life of the process: one count is never given back
            with _secret_lock:
                _secret_counts[settings.vllm_token] += 1
                register_secret(settings.vllm_token)

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- load / unload / list -------------------------------------------------------------------

    async def load_adapter(self, *, adapter_name: str, targets: Sequence[str] = (), token: str = "") -> LoadResult:
        """Check adapters/<adapter_name>, then load it on every target (default: the replicas)."""
        adapter = inspect_adapter(self.settings.adapters_dir, adapter_name)
        if adapter.rank > self.settings.vllm_max_lora_rank:
            raise FailedPrecondition(
                f"adapter {adapter.name!r} has LoRA rank {adapter.rank}, above the vLLM servers' maximum of "
                f"{self.settings.vllm_max_lora_rank} (SYNTHTUNE_VLLM_MAX_LORA_RANK, which must equal vLLM's "
                f"--max-lora-rank): retrain with lora_r <= {self.settings.vllm_max_lora_rank}, or start vLLM with "
                f"--max-lora-rank >= {adapter.rank} and raise the setting to match.", field="adapter_name")
        chosen = self._targets(targets, self.settings.replicas)
        path = adapter.vllm_path(self.settings.vllm_adapter_root)
        with _secret(token):
            results = await asyncio.gather(*(
                self._per_replica(target, adapter.name, self._load_on(target, adapter, path, self._token(token)))
                for target in chosen))
        _raise_if_all_failed(results, "load")
        for result in results:
            logger.info("adapter load", extra={"adapter": adapter.name, "target": result.target, "ok": result.ok,
                                               "already_loaded": result.already_loaded, "code": result.code})
        return LoadResult(served_name=adapter.name, replicas=list(results))

    async def unload_adapter(self, *, served_name: str, targets: Sequence[str] = (), token: str = "") -> LoadResult:
        """Unload `served_name` from every target (default: the replicas). Never touches the adapter's folder."""
        validate_name(served_name, field="served_name")
        chosen = self._targets(targets, self.settings.replicas)
        with _secret(token):
            results = await asyncio.gather(*(
                self._per_replica(target, served_name, self._unload_on(target, served_name, self._token(token)))
                for target in chosen))
        _raise_if_all_failed(results, "unload")
        for result in results:
            logger.info("adapter unload", extra={"served_name": served_name, "target": result.target,
                                                 "ok": result.ok, "code": result.code})
        return LoadResult(served_name=served_name, replicas=list(results))

    async def list_served_models(self, *, targets: Sequence[str] = (), token: str = "") -> list[TargetModels]:
        """What each target serves now (default: every configured target); an unreachable one says why."""
        chosen = self._targets(targets, self.settings.known_targets)
        with _secret(token):
            return list(await asyncio.gather(*(self._list_one(target, self._token(token)) for target in chosen)))

    # -- compare --------------------------------------------------------------------------------

    async def compare_one(self, *, prompt: str, adapter_name: str, served_name: str = "", target: str = "",
                          token: str = "", sampling: Sampling = GREEDY, system_prompt: str = "") -> CompareResult:
        """Base and adapter answer `prompt` concurrently, with identical parameters, in the manifest's format."""
        if not prompt.strip():
            raise InvalidArgument("prompt is required.", field="prompt")
        adapter = inspect_adapter(self.settings.adapters_dir, adapter_name)
        params = sampling_params(sampling, default_max_tokens=self.settings.compare_max_tokens)
        chosen = self._target(target)
        route, fragment = prompt_request(prompt, adapter.prompt_format, system=system_prompt)
        with _secret(token):
            vllm_token = self._token(token)

            def generate(names: tuple[str, str]) -> list[Awaitable[Completion]]:
                return [self.client.complete(chosen, route=route, body={"model": model, **fragment, **params},
                                             token=vllm_token) for model in names]

            key = (chosen, adapter.name, served_name)
            guess = self._compare_names.get(key)
            if guess is None:
                names = await self._compare_models(chosen, adapter, served_name, vllm_token)
                base, tuned = await _both(*generate(names))
            else:
                # The check and the generations at once: the answers count only if the fresh /v1/models
                # names the same models (else they are dropped and asked again), so a comparison is
                # still checked against what vLLM serves now, without waiting for the listing first.
                started = [asyncio.ensure_future(call) for call in generate(guess)]
                try:
                    names = await self._compare_models(chosen, adapter, served_name, vllm_token)
                except BaseException:
                    self._compare_names.pop(key, None)
                    _cancel(started)
                    raise
                if names == guess:
                    base, tuned = await _both(*started)
                else:
                    _cancel(started)
                    base, tuned = await _both(*generate(names))
            if len(self._compare_names) >= _MAX_REMEMBERED and key not in self._compare_names:
                self._compare_names.clear()
            self._compare_names[key] = names
        return CompareResult(base=base, adapter=tuned, prompt_format=adapter.prompt_format)

    async def compare_batch(self, *, adapter_name: str, served_name: str = "", dataset_path: str = "",
                            limit: int = 0, target: str = "", token: str = "", sampling: Sampling = GREEDY,
                            judge: JudgeConfig | None = None) -> AsyncIterator[CompareRow | CompareSummary]:
        """One CompareRow per dataset row (in file order), then a CompareSummary.

        Rows come from `dataset_path` or, by default, the adapter's eval split. A row vLLM refuses
        (INVALID_ARGUMENT, e.g. longer than its context) is reported with `error` and counts as a
        miss; anything else (vLLM down, adapter gone) ends the stream with that error.

        With `judge`, the judge is asked before the first row (serving_proxy_svc.judge.JudgeClient.probe)
        and each row carries its judgement; rows are judged while the next ones are generated (at most
        judge.concurrency rows waiting), and still come out in file order.
        """
        adapter = inspect_adapter(self.settings.adapters_dir, adapter_name)
        params = sampling_params(sampling, default_max_tokens=self.settings.compare_max_tokens)
        chosen = self._target(target)
        if limit < 0 or limit > self.settings.compare_max_rows:
            raise InvalidArgument(f"limit must be between 0 (all rows, at most {self.settings.compare_max_rows}) and "
                                  f"{self.settings.compare_max_rows}.", field="limit")
        path, relative = self._rows_path(adapter, dataset_path)
        rows = _read_rows(path, relative, limit or self.settings.compare_max_rows)
        if judge is not None:
            judge = self._judge_outbound(judge)
        fmt = adapter.prompt_format
        sides: dict[str, dict[str, list]] = {side: {"exact": [], "chrf": [], "latency": [], "finish": []}
                                             for side in ("base", "adapter")}
        failed = 0
        judgements: list[RowJudgement] = []
        judging: Judge | None = None
        pending: deque[tuple[CompareRow, asyncio.Future]] = deque()
        with _secret(token), _secret(judge.token if judge else ""):
            vllm_token = self._token(token)
            base_model, adapter_model = await self._compare_models(chosen, adapter, served_name, vllm_token)
            if judge is not None:
                judging = Judge(self._judge_with_token(judge, vllm_token))
            try:
                if judging is not None:
                    await judging.client.probe()
                for index, row in enumerate(rows):
                    request = row_request(row, fmt)
                    answers = await _both(*(
                        _row_side(self.client.complete(chosen, route=request.route,
                                                       body={"model": model, **request.body, **params},
                                                       token=vllm_token))
                        for model in (base_model, adapter_model)))
                    errors = [answer for answer in answers if isinstance(answer, SynthtuneError)]
                    scored = {}
                    for side, answer in zip(("base", "adapter"), answers):
                        ok = isinstance(answer, Completion)
                        exact = ok and exact_match(answer.text, request.reference)
                        score = chrf(answer.text, request.reference) if ok else 0.0
                        scored[side] = (answer if ok else None, exact, score)
                        sides[side]["exact"].append(exact)
                        sides[side]["chrf"].append(score)
                        if ok:
                            sides[side]["latency"].append(answer.latency_ms)
                            sides[side]["finish"].append(answer.finish_reason)
                    failed += bool(errors)
                    compared = CompareRow(
                        index=index, prompt=request.prompt, reference=request.reference,
                        base=scored["base"][0], adapter=scored["adapter"][0],
                        base_exact=scored["base"][1], adapter_exact=scored["adapter"][1],
                        base_chrf=scored["base"][2], adapter_chrf=scored["adapter"][2],
                        error="; ".join(dict.fromkeys(error.message for error in errors)),
                    )
                    if judging is None:
                        yield compared
                        continue
                    pending.append((compared, asyncio.ensure_future(_judge_row(judging, compared))))
                    # Yield what is judged; wait only when too many rows are waiting for the judge.
                    while pending and (pending[0][1].done() or len(pending) > judging.config.concurrency):
                        done, task = pending.popleft()
                        judgements.append(await task)
                        yield replace(done, judgement=judgements[-1])
                while pending:
                    done, task = pending.popleft()
                    judgements.append(await task)
                    yield replace(done, judgement=judgements[-1])
            finally:
                for _, task in pending:
                    task.cancel()
                    task.add_done_callback(_consume)
                if judging is not None:
                    await judging.aclose()
        summaries = {side: summarize(exact=values["exact"], chrfs=values["chrf"], latencies_ms=values["latency"],
                                     finish_reasons=values["finish"], rows=len(rows))
                     for side, values in sides.items()}
        judge_summary = None
        if judging is not None:
            judge_summary = summarize_judgements(judgements, config=judging.config,
                                                 prompt_tokens=judging.prompt_tokens,
                                                 completion_tokens=judging.completion_tokens)
        logger.info("batch compare done", extra={
            "adapter": adapter.name, "rows": len(rows), "failed_rows": failed,
            "adapter_exact": summaries["adapter"].exact_match_rate,
            **({"judge_win_rate": judge_summary.win_rate, "judge_no_verdict": judge_summary.no_verdict}
               if judge_summary else {})})
        yield CompareSummary(rows=len(rows), base=summaries["base"], adapter=summaries["adapter"],
                             dataset_path=relative, prompt_format=fmt, failed_rows=failed, judge=judge_summary)

    def _judge_with_token(self, judge: JudgeConfig, vllm_token: str) -> JudgeConfig:
        """A judge at one of the proxy's own vLLM targets, given no token, gets the vLLM token: that
        URL is trusted with it already. Any other URL only ever gets the judge's own token."""
        if judge.token or not vllm_token:
            return judge
        return replace(judge, token=vllm_token) if self._own_target(judge.base_url) else judge

    def _own_target(self, url: str) -> bool:
        try:
            return normalize_target(url) in self.settings.known_targets
        except ValueError:
            return False

    def _judge_outbound(self, judge: JudgeConfig) -> JudgeConfig:
        """`judge` with the outbound policy to check its connections; InvalidArgument naming
        judge.base_url when the policy refuses it now. One of the proxy's own vLLM targets is
        exempt: an operator configured it, a request did not."""
        if self._own_target(judge.base_url):
            return judge
        policy = self.settings.outbound_policy
        policy.check_url(judge.base_url, field="judge.base_url")
        return replace(judge, outbound=policy)

    # -- per replica --------------------------------------------------------------------------

    async def _per_replica(self, target: str, served_name: str, work: Awaitable[ReplicaResult]) -> ReplicaResult:
        try:
            return await work
        except SynthtuneError as exc:
            return ReplicaResult(target=target, ok=False, served_name=served_name, code=exc.code, message=exc.message)

    async def _load_on(self, target: str, adapter: Adapter, path: str, token: str) -> ReplicaResult:
        cards = await self.client.models(target, token=token)
        _check_base_model(adapter, cards, target)
        if any(card.id == adapter.name and not card.parent for card in cards):
            raise AlreadyExists(f"vLLM at {target} serves a base model named {adapter.name!r}.", field="adapter_name")
        existing = _card(cards, adapter.name)
        if existing is not None:
            return _already_loaded(existing, target, adapter.name, path)
        try:
            await self.client.load_adapter(target, name=adapter.name, path=path, token=token)
        except AdapterAlreadyLoaded:
            # Someone loaded the name between our look and our load: the listing says whether it is ours.
            existing = _card(await self.client.models(target, token=token), adapter.name)
            if existing is None:
                raise AlreadyExists(f"vLLM at {target} says {adapter.name!r} is loaded but does not list it.",
                                    field="adapter_name") from None
            return _already_loaded(existing, target, adapter.name, path)
        loaded = _card(await self.client.models(target, token=token), adapter.name)
        if loaded is None or not _same_path(loaded.root, path):
            raise Internal(f"vLLM at {target} answered the load of {adapter.name!r} with success, but /v1/models "
                           f"does not list it from {path}.")
        return ReplicaResult(target=target, ok=True, served_name=adapter.name)

    async def _unload_on(self, target: str, served_name: str, token: str) -> ReplicaResult:
        await self.client.unload_adapter(target, name=served_name, token=token)
        return ReplicaResult(target=target, ok=True, served_name=served_name)

    async def _list_one(self, target: str, token: str) -> TargetModels:
        try:
            cards = await self.client.models(target, token=token)
        except SynthtuneError as exc:
            return TargetModels(target=target, reachable=False, error=exc.message)
        root = self.settings.vllm_adapter_root
        models = [ServedModel(id=c.id, root=c.root, parent=c.parent,
                              adapter_name=adapter_name_for_root(c.root, root) if c.parent else "")
                  for c in cards]
        return TargetModels(target=target, reachable=True, models=models)

    async def _compare_models(self, target: str, adapter: Adapter, served_name: str, token: str) -> tuple[str, str]:
        """(base model name, adapter's served name) on `target`, from /v1/models: the adapter must be loaded."""
        path = adapter.vllm_path(self.settings.vllm_adapter_root)
        cards = await self.client.models(target, token=token)
        if served_name:
            validate_name(served_name, field="served_name")
            card = _card(cards, served_name)
            if card is None:
                raise NotFound(f"{served_name!r} is not loaded on vLLM at {target} (a restarted vLLM forgets "
                               "runtime-loaded adapters): load it first.", field="served_name")
            if not card.parent:
                raise InvalidArgument(f"{served_name!r} is a base model on vLLM at {target}, not an adapter.",
                                      field="served_name")
            if not _same_path(card.root, path):
                raise FailedPrecondition(
                    f"{served_name!r} on vLLM at {target} is loaded from {card.root}, not from adapters/{adapter.name}: "
                    "the comparison would use another adapter's prompt format.", field="served_name")
        else:
            matches = [c for c in cards if c.parent and _same_path(c.root, path)]
            if not matches:
                raise NotFound(f"adapter {adapter.name!r} is not loaded on vLLM at {target} (a restarted vLLM forgets "
                               "runtime-loaded adapters): load it first.", field="adapter_name")
            card = next((c for c in matches if c.id == adapter.name), matches[0])
        return card.parent, card.id

    # -- helpers --------------------------------------------------------------------------------

    def _token(self, token: str) -> str:
        return check_bearer_token(token, field="token") or self.settings.vllm_token

    def _targets(self, requested: Sequence[str], default: Sequence[str]) -> list[str]:
        if not requested:
            return list(default)
        return list(dict.fromkeys(self._known(target, field="targets") for target in requested))

    def _target(self, requested: str) -> str:
        return self._known(requested, field="target") if requested else self.settings.vllm_url

    def _known(self, target: str, *, field: str) -> str:
        try:
            normal = normalize_target(target)
        except ValueError as exc:
            raise InvalidArgument(f"{field}: {exc}", field=field) from None
        if normal not in self.settings.known_targets:
            raise InvalidArgument(
                f"{field}: {normal} is not a vLLM target this proxy is configured for "
                f"({', '.join(self.settings.known_targets)}); add it to SYNTHTUNE_VLLM_REPLICAS.", field=field)
        return normal

    def _rows_path(self, adapter: Adapter, dataset_path: str) -> tuple[Path, str]:
        if not dataset_path:
            path = eval_split_path(adapter)
            return path, f"adapters/{adapter.name}/{path.name}"
        data_root = Path(self.settings.data_root)
        path = resolve_under(data_root, dataset_path, field="dataset_path")
        parts = PurePosixPath(dataset_path).parts  # "." has none: the data root itself
        top = parts[0] if parts else ""
        if top not in DATASET_DIRS or path.suffix != ".jsonl":
            raise InvalidArgument(f"dataset_path {dataset_path!r} must be a .jsonl file under datasets/ or adapters/.",
                                  field="dataset_path")
        if not path.is_file():
            raise NotFound(f"dataset_path {dataset_path!r} does not exist.", field="dataset_path")
        return path, PurePosixPath(dataset_path).as_posix()


def _card(cards: Sequence[ModelCard], name: str) -> ModelCard | None:
    return next((card for card in cards if card.id == name), None)


def _same_path(root: str, path: str) -> bool:
    """Is a /v1/models `root` the folder `path`? (vLLM keeps the path as it was sent.)"""
    return root.rstrip("/") == path.rstrip("/")


def _already_loaded(card: ModelCard, target: str, name: str, path: str) -> ReplicaResult:
    if _same_path(card.root, path):
        return ReplicaResult(target=target, ok=True, served_name=name, already_loaded=True)
    raise AlreadyExists(
        f"vLLM at {target} already serves {name!r} from {card.root}, not from {path}: a served name is never reused "
        "for other weights (unload it first if that folder is gone).", field="adapter_name")


def base_model_matches(base_id: str, card: ModelCard) -> bool:
    """Is `card` (a base model in /v1/models) the model `base_id` names?

    vLLM lists a base model with `id` = its served name and `root` = what --model was: a hub
    id, a local folder, or a hub cache snapshot. The adapter records the canonical id (for
    local tiny models, the folder name). A folder named like the id's last part counts.
    """
    if base_id in (card.id, card.root):
        return True
    root = card.root.rstrip("/")
    if root.endswith("/" + base_id) or root.split("/")[-1] == base_id.split("/")[-1]:
        return True
    # A hub cache snapshot: .../models--org--name/snapshots/<sha>
    return f"/models--{base_id.replace('/', '--')}/snapshots/" in root + "/"


def _check_base_model(adapter: Adapter, cards: Sequence[ModelCard], target: str) -> None:
    bases = [card for card in cards if not card.parent]
    if any(base_model_matches(adapter.base_model_id, card) for card in bases):
        return
    served = ", ".join(f"{card.id!r} ({card.root})" for card in bases) or "nothing"
    raise FailedPrecondition(
        f"adapter {adapter.name!r} was trained on {adapter.base_model_id!r}, but vLLM at {target} serves {served}: "
        "load it on a vLLM serving its base model.", field="adapter_name")


def _raise_if_all_failed(results: Sequence[ReplicaResult], what: str) -> None:
    failed = [result for result in results if not result.ok]
    if not results or len(failed) < len(results):
        return
    error_class = _ERRORS.get(failed[0].code, Internal)
    if len(failed) == 1:
        raise error_class(failed[0].message, extra={"target": failed[0].target})
    codes = Counter(result.code for result in failed)
    listed = "; ".join(f"{result.target}: {result.message}" for result in failed)
    raise error_class(f"{what} failed on every replica ({', '.join(codes)}): {listed}",
                      extra={"replicas": [{"target": r.target, "code": r.code} for r in failed]})


def _error_classes() -> dict[str, type[SynthtuneError]]:
    from serving_proxy_svc import errors as proxy_errors
    from synthtune import errors as shared

    classes = [obj for module in (shared, proxy_errors) for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, SynthtuneError) and obj is not SynthtuneError]
    return {cls.code: cls for cls in classes}


_ERRORS = _error_classes()


async def _both(first: Awaitable[T], second: Awaitable[T]) -> list[T]:
    """Run two calls concurrently; if one fails, the other is cancelled and the error raised."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
                task.add_done_callback(_consume)


def _cancel(tasks: Sequence[asyncio.Future]) -> None:
    """Cancel calls whose answers are not wanted, and never leave their errors unretrieved."""
    for task in tasks:
        task.cancel()
        task.add_done_callback(_consume)


def _consume(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


async def _judge_row(judge: Judge, row: CompareRow) -> RowJudgement:
    if row.base is None or row.adapter is None:
        return not_judged(judge.config, f"not judged: the row could not be compared ({row.error})")
    return await judge.judge_row(instruction=row.prompt, reference=row.reference, base=row.base.text,
                                 adapter=row.adapter.text)


async def _row_side(call: Awaitable[Completion]) -> Completion | SynthtuneError:
    """A row's answer, or the error of a row vLLM refused; anything systemic propagates."""
    try:
        return await call
    except InvalidArgument as exc:
        return exc


def _read_rows(path: Path, relative: str, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                row_format(row)
                rows.append(row)
            except json.JSONDecodeError as exc:
                errors.append(f"line {number}: not valid JSON ({exc.msg})")
            except ValueError as exc:
                errors.append(f"line {number}: {exc}")
    if errors:
        raise InvalidArgument(f"{relative} has bad line(s): {'; '.join(errors[:_REPORTED_LINE_ERRORS])}",
                              field="dataset_path")
    if not rows:
        raise InvalidArgument(f"{relative} holds no rows.", field="dataset_path")
    return rows


_secret_counts: Counter[str] = Counter()
_secret_lock = threading.Lock()


@contextmanager
def _secret(token: str) -> Iterator[None]:
    """Mask a request's vLLM token in every log line while any call that carries it runs."""
    if not token:
        yield
        return
    with _secret_lock:
        _secret_counts[token] += 1
        register_secret(token)
    try:
        yield
    finally:
        with _secret_lock:
            _secret_counts[token] -= 1
            if _secret_counts[token] <= 0:
                del _secret_counts[token]
                forget_secret(token)
