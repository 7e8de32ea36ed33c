from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadAdapterRequest(_message.Message):
    __slots__ = ("adapter_name", "targets", "token")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    targets: _containers.RepeatedScalarFieldContainer[str]
    token: str
    def __init__(self, adapter_name: _Optional[str] = ..., targets: _Optional[_Iterable[str]] = ..., token: _Optional[str] = ...) -> None: ...

class ReplicaResult(_message.Message):
    __slots__ = ("target", "ok", "served_name", "code", "message", "already_loaded")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    SERVED_NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ALREADY_LOADED_FIELD_NUMBER: _ClassVar[int]
    target: str
    ok: bool
    served_name: str
    code: str
    message: str
    already_loaded: bool
    def __init__(self, target: _Optional[str] = ..., ok: _Optional[bool] = ..., served_name: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., already_loaded: _Optional[bool] = ...) -> None: ...

class LoadAdapterResponse(_message.Message):
    __slots__ = ("served_name", "replicas")
    SERVED_NAME_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    served_name: str
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaResult]
    def __init__(self, served_name: _Optional[str] = ..., replicas: _Optional[_Iterable[_Union[ReplicaResult, _Mapping]]] = ...) -> None: ...

class UnloadAdapterRequest(_message.Message):
    __slots__ = ("served_name", "targets", "token")
    SERVED_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    served_name: str
    targets: _containers.RepeatedScalarFieldContainer[str]
    token: str
    def __init__(self, served_name: _Optional[str] = ..., targets: _Optional[_Iterable[str]] = ..., token: _Optional[str] = ...) -> None: ...

class UnloadAdapterResponse(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaResult]
    def __init__(self, replicas: _Optional[_Iterable[_Union[ReplicaResult, _Mapping]]] = ...) -> None: ...

class ListServedModelsRequest(_message.Message):
    __slots__ = ("targets", "token")
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedScalarFieldContainer[str]
    token: str
    def __init__(self, targets: _Optional[_Iterable[str]] = ..., token: _Optional[str] = ...) -> None: ...

class ServedModel(_message.Message):
    __slots__ = ("id", "root", "parent", "adapter_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    root: str
    parent: str
    adapter_name: str
    def __init__(self, id: _Optional[str] = ..., root: _Optional[str] = ..., parent: _Optional[str] = ..., adapter_name: _Optional[str] = ...) -> None: ...

class TargetModels(_message.Message):
    __slots__ = ("target", "reachable", "error", "models")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    target: str
    reachable: bool
    error: str
    models: _containers.RepeatedCompositeFieldContainer[ServedModel]
    def __init__(self, target: _Optional[str] = ..., reachable: _Optional[bool] = ..., error: _Optional[str] = ..., models: _Optional[_Iterable[_Union[ServedModel, _Mapping]]] = ...) -> None: ...

class ListServedModelsResponse(_message.Message):
    __slots__ = ("targets",)
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[TargetModels]
    def __init__(self, targets: _Optional[_Iterable[_Union[TargetModels, _Mapping]]] = ...) -> None: ...

class Sampling(_message.Message):
    __slots__ = ("temperature", "top_p", "max_tokens", "seed")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class CompareOneRequest(_message.Message):
    __slots__ = ("prompt", "adapter_name", "served_name", "target", "token", "sampling", "system_prompt")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVED_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    adapter_name: str
    served_name: str
    target: str
    token: str
    sampling: Sampling
    system_prompt: str
    def __init__(self, prompt: _Optional[str] = ..., adapter_name: _Optional[str] = ..., served_name: _Optional[str] = ..., target: _Optional[str] = ..., token: _Optional[str] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., system_prompt: _Optional[str] = ...) -> None: ...

class Generation(_message.Message):
    __slots__ = ("model", "text", "latency_ms", "prompt_tokens", "completion_tokens", "finish_reason")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    model: str
    text: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    def __init__(self, model: _Optional[str] = ..., text: _Optional[str] = ..., latency_ms: _Optional[float] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class CompareOneResponse(_message.Message):
    __slots__ = ("base", "adapter", "prompt_format")
    BASE_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    base: Generation
    adapter: Generation
    prompt_format: str
    def __init__(self, base: _Optional[_Union[Generation, _Mapping]] = ..., adapter: _Optional[_Union[Generation, _Mapping]] = ..., prompt_format: _Optional[str] = ...) -> None: ...

class CompareBatchRequest(_message.Message):
    __slots__ = ("adapter_name", "served_name", "dataset_path", "limit", "target", "token", "sampling", "judge")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVED_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_PATH_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    served_name: str
    dataset_path: str
    limit: int
    target: str
    token: str
    sampling: Sampling
    judge: Judge
    def __init__(self, adapter_name: _Optional[str] = ..., served_name: _Optional[str] = ..., dataset_path: _Optional[str] = ..., limit: _Optional[int] = ..., target: _Optional[str] = ..., token: _Optional[str] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., judge: _Optional[_Union[Judge, _Mapping]] = ...) -> None: ...

class Judge(_message.Message):
    __slots__ = ("base_url", "model", "token", "rubric", "mode", "concurrency", "request_timeout_s", "max_retries", "max_tokens")
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    base_url: str
    model: str
    token: str
    rubric: str
    mode: str
    concurrency: int
    request_timeout_s: float
    max_retries: int
    max_tokens: int
    def __init__(self, base_url: _Optional[str] = ..., model: _Optional[str] = ..., token: _Optional[str] = ..., rubric: _Optional[str] = ..., mode: _Optional[str] = ..., concurrency: _Optional[int] = ..., request_timeout_s: _Optional[float] = ..., max_retries: _Optional[int] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class PairwiseVerdict(_message.Message):
    __slots__ = ("first", "winner", "reason", "error")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    WINNER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    first: str
    winner: str
    reason: str
    error: str
    def __init__(self, first: _Optional[str] = ..., winner: _Optional[str] = ..., reason: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class SingleScore(_message.Message):
    __slots__ = ("score", "reason", "error")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    score: int
    reason: str
    error: str
    def __init__(self, score: _Optional[int] = ..., reason: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class RowJudgement(_message.Message):
    __slots__ = ("outcome", "inconsistent", "reason", "verdicts", "base_score", "adapter_score")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    INCONSISTENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    BASE_SCORE_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_SCORE_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    inconsistent: bool
    reason: str
    verdicts: _containers.RepeatedCompositeFieldContainer[PairwiseVerdict]
    base_score: SingleScore
    adapter_score: SingleScore
    def __init__(self, outcome: _Optional[str] = ..., inconsistent: _Optional[bool] = ..., reason: _Optional[str] = ..., verdicts: _Optional[_Iterable[_Union[PairwiseVerdict, _Mapping]]] = ..., base_score: _Optional[_Union[SingleScore, _Mapping]] = ..., adapter_score: _Optional[_Union[SingleScore, _Mapping]] = ...) -> None: ...

class CompareRow(_message.Message):
    __slots__ = ("index", "prompt", "reference", "base", "adapter", "base_exact", "adapter_exact", "base_chrf", "adapter_chrf", "error", "judgement")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    BASE_EXACT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_EXACT_FIELD_NUMBER: _ClassVar[int]
    BASE_CHRF_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_CHRF_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    JUDGEMENT_FIELD_NUMBER: _ClassVar[int]
    index: int
    prompt: str
    reference: str
    base: Generation
    adapter: Generation
    base_exact: bool
    adapter_exact: bool
    base_chrf: float
    adapter_chrf: float
    error: str
    judgement: RowJudgement
    def __init__(self, index: _Optional[int] = ..., prompt: _Optional[str] = ..., reference: _Optional[str] = ..., base: _Optional[_Union[Generation, _Mapping]] = ..., adapter: _Optional[_Union[Generation, _Mapping]] = ..., base_exact: _Optional[bool] = ..., adapter_exact: _Optional[bool] = ..., base_chrf: _Optional[float] = ..., adapter_chrf: _Optional[float] = ..., error: _Optional[str] = ..., judgement: _Optional[_Union[RowJudgement, _Mapping]] = ...) -> None: ...

class SideSummary(_message.Message):
    __slots__ = ("exact_match_rate", "chrf", "latency_p50_ms", "latency_p95_ms", "stop_rate")
    EXACT_MATCH_RATE_FIELD_NUMBER: _ClassVar[int]
    CHRF_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    STOP_RATE_FIELD_NUMBER: _ClassVar[int]
    exact_match_rate: float
    chrf: float
    latency_p50_ms: float
    latency_p95_ms: float
    stop_rate: float
    def __init__(self, exact_match_rate: _Optional[float] = ..., chrf: _Optional[float] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., stop_rate: _Optional[float] = ...) -> None: ...

class CompareSummary(_message.Message):
    __slots__ = ("rows", "base", "adapter", "dataset_path", "prompt_format", "failed_rows", "judge")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    DATASET_PATH_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    FAILED_ROWS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    rows: int
    base: SideSummary
    adapter: SideSummary
    dataset_path: str
    prompt_format: str
    failed_rows: int
    judge: JudgeSummary
    def __init__(self, rows: _Optional[int] = ..., base: _Optional[_Union[SideSummary, _Mapping]] = ..., adapter: _Optional[_Union[SideSummary, _Mapping]] = ..., dataset_path: _Optional[str] = ..., prompt_format: _Optional[str] = ..., failed_rows: _Optional[int] = ..., judge: _Optional[_Union[JudgeSummary, _Mapping]] = ...) -> None: ...

class JudgeSummary(_message.Message):
    __slots__ = ("model", "mode", "wins", "ties", "losses", "no_verdict", "inconsistent", "win_rate", "tie_rate", "loss_rate", "win_rate_low", "win_rate_high", "base_score_mean", "adapter_score_mean", "base_scored", "adapter_scored", "prompt_tokens", "completion_tokens", "error")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    WINS_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    NO_VERDICT_FIELD_NUMBER: _ClassVar[int]
    INCONSISTENT_FIELD_NUMBER: _ClassVar[int]
    WIN_RATE_FIELD_NUMBER: _ClassVar[int]
    TIE_RATE_FIELD_NUMBER: _ClassVar[int]
    LOSS_RATE_FIELD_NUMBER: _ClassVar[int]
    WIN_RATE_LOW_FIELD_NUMBER: _ClassVar[int]
    WIN_RATE_HIGH_FIELD_NUMBER: _ClassVar[int]
    BASE_SCORE_MEAN_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_SCORE_MEAN_FIELD_NUMBER: _ClassVar[int]
    BASE_SCORED_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_SCORED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    model: str
    mode: str
    wins: int
    ties: int
    losses: int
    no_verdict: int
    inconsistent: int
    win_rate: float
    tie_rate: float
    loss_rate: float
    win_rate_low: float
    win_rate_high: float
    base_score_mean: float
    adapter_score_mean: float
    base_scored: int
    adapter_scored: int
    prompt_tokens: int
    completion_tokens: int
    error: str
    def __init__(self, model: _Optional[str] = ..., mode: _Optional[str] = ..., wins: _Optional[int] = ..., ties: _Optional[int] = ..., losses: _Optional[int] = ..., no_verdict: _Optional[int] = ..., inconsistent: _Optional[int] = ..., win_rate: _Optional[float] = ..., tie_rate: _Optional[float] = ..., loss_rate: _Optional[float] = ..., win_rate_low: _Optional[float] = ..., win_rate_high: _Optional[float] = ..., base_score_mean: _Optional[float] = ..., adapter_score_mean: _Optional[float] = ..., base_scored: _Optional[int] = ..., adapter_scored: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class CompareBatchEvent(_message.Message):
    __slots__ = ("row", "summary")
    ROW_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    row: CompareRow
    summary: CompareSummary
    def __init__(self, row: _Optional[_Union[CompareRow, _Mapping]] = ..., summary: _Optional[_Union[CompareSummary, _Mapping]] = ...) -> None: ...
