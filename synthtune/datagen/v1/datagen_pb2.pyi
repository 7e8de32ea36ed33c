import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATION_MODE_UNSPECIFIED: _ClassVar[GenerationMode]
    GENERATION_MODE_FIXED: _ClassVar[GenerationMode]
    GENERATION_MODE_SELF_INSTRUCT: _ClassVar[GenerationMode]
    GENERATION_MODE_FROM_INSTRUCTIONS: _ClassVar[GenerationMode]
    GENERATION_MODE_EVOL_INSTRUCT: _ClassVar[GenerationMode]
    GENERATION_MODE_TOPIC_TREE: _ClassVar[GenerationMode]
    GENERATION_MODE_CURATE: _ClassVar[GenerationMode]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
GENERATION_MODE_UNSPECIFIED: GenerationMode
GENERATION_MODE_FIXED: GenerationMode
GENERATION_MODE_SELF_INSTRUCT: GenerationMode
GENERATION_MODE_FROM_INSTRUCTIONS: GenerationMode
GENERATION_MODE_EVOL_INSTRUCT: GenerationMode
GENERATION_MODE_TOPIC_TREE: GenerationMode
GENERATION_MODE_CURATE: GenerationMode
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class Endpoint(_message.Message):
    __slots__ = ("base_url", "model", "token", "skip_tls_verify", "request_timeout_s", "max_retries")
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SKIP_TLS_VERIFY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    base_url: str
    model: str
    token: str
    skip_tls_verify: bool
    request_timeout_s: float
    max_retries: int
    def __init__(self, base_url: _Optional[str] = ..., model: _Optional[str] = ..., token: _Optional[str] = ..., skip_tls_verify: _Optional[bool] = ..., request_timeout_s: _Optional[float] = ..., max_retries: _Optional[int] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("concurrency", "requests_per_minute")
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    concurrency: int
    requests_per_minute: float
    def __init__(self, concurrency: _Optional[int] = ..., requests_per_minute: _Optional[float] = ...) -> None: ...

class Sampling(_message.Message):
    __slots__ = ("temperature", "top_p", "max_tokens")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_tokens: int
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class EvolInstruct(_message.Message):
    __slots__ = ("rounds", "breadth_share")
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    BREADTH_SHARE_FIELD_NUMBER: _ClassVar[int]
    rounds: int
    breadth_share: float
    def __init__(self, rounds: _Optional[int] = ..., breadth_share: _Optional[float] = ...) -> None: ...

class TopicTree(_message.Message):
    __slots__ = ("depth", "breadth")
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    BREADTH_FIELD_NUMBER: _ClassVar[int]
    depth: int
    breadth: int
    def __init__(self, depth: _Optional[int] = ..., breadth: _Optional[int] = ...) -> None: ...

class NearDupFilter(_message.Message):
    __slots__ = ("enabled", "threshold")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    threshold: float
    def __init__(self, enabled: _Optional[bool] = ..., threshold: _Optional[float] = ...) -> None: ...

class DecontamFilter(_message.Message):
    __slots__ = ("eval_paths", "ngram", "threshold")
    EVAL_PATHS_FIELD_NUMBER: _ClassVar[int]
    NGRAM_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    eval_paths: _containers.RepeatedScalarFieldContainer[str]
    ngram: int
    threshold: float
    def __init__(self, eval_paths: _Optional[_Iterable[str]] = ..., ngram: _Optional[int] = ..., threshold: _Optional[float] = ...) -> None: ...

class Criterion(_message.Message):
    __slots__ = ("name", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class JudgeFilter(_message.Message):
    __slots__ = ("endpoint", "limits", "rubric", "min_score")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    limits: Limits
    rubric: _containers.RepeatedCompositeFieldContainer[Criterion]
    min_score: float
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., rubric: _Optional[_Iterable[_Union[Criterion, _Mapping]]] = ..., min_score: _Optional[float] = ...) -> None: ...

class Filters(_message.Message):
    __slots__ = ("near_dup", "decontam", "judge")
    NEAR_DUP_FIELD_NUMBER: _ClassVar[int]
    DECONTAM_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    near_dup: NearDupFilter
    decontam: DecontamFilter
    judge: JudgeFilter
    def __init__(self, near_dup: _Optional[_Union[NearDupFilter, _Mapping]] = ..., decontam: _Optional[_Union[DecontamFilter, _Mapping]] = ..., judge: _Optional[_Union[JudgeFilter, _Mapping]] = ...) -> None: ...

class StartGenerationRequest(_message.Message):
    __slots__ = ("dataset_name", "endpoint", "limits", "sampling", "num_rows", "mode", "system_prompt", "prompt_template", "topic", "seed_examples", "instructions", "evol_instruct", "topic_tree", "source_path", "filters")
    DATASET_NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    SEED_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    EVOL_INSTRUCT_FIELD_NUMBER: _ClassVar[int]
    TOPIC_TREE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    dataset_name: str
    endpoint: Endpoint
    limits: Limits
    sampling: Sampling
    num_rows: int
    mode: GenerationMode
    system_prompt: str
    prompt_template: str
    topic: str
    seed_examples: _containers.RepeatedScalarFieldContainer[str]
    instructions: _containers.RepeatedScalarFieldContainer[str]
    evol_instruct: EvolInstruct
    topic_tree: TopicTree
    source_path: str
    filters: Filters
    def __init__(self, dataset_name: _Optional[str] = ..., endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., num_rows: _Optional[int] = ..., mode: _Optional[_Union[GenerationMode, str]] = ..., system_prompt: _Optional[str] = ..., prompt_template: _Optional[str] = ..., topic: _Optional[str] = ..., seed_examples: _Optional[_Iterable[str]] = ..., instructions: _Optional[_Iterable[str]] = ..., evol_instruct: _Optional[_Union[EvolInstruct, _Mapping]] = ..., topic_tree: _Optional[_Union[TopicTree, _Mapping]] = ..., source_path: _Optional[str] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ...) -> None: ...

class StartGenerationResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: GenerationJob
    def __init__(self, job: _Optional[_Union[GenerationJob, _Mapping]] = ...) -> None: ...

class WatchGenerationRequest(_message.Message):
    __slots__ = ("job_id", "after_seq")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_seq: int
    def __init__(self, job_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class GetGenerationRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetGenerationResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: GenerationJob
    def __init__(self, job: _Optional[_Union[GenerationJob, _Mapping]] = ...) -> None: ...

class ListGenerationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGenerationsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[GenerationJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[GenerationJob, _Mapping]]] = ...) -> None: ...

class CancelGenerationRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelGenerationResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: GenerationJob
    def __init__(self, job: _Optional[_Union[GenerationJob, _Mapping]] = ...) -> None: ...

class ResumeGenerationRequest(_message.Message):
    __slots__ = ("job_id", "token", "judge_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    JUDGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    token: str
    judge_token: str
    def __init__(self, job_id: _Optional[str] = ..., token: _Optional[str] = ..., judge_token: _Optional[str] = ...) -> None: ...

class ResumeGenerationResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: GenerationJob
    def __init__(self, job: _Optional[_Union[GenerationJob, _Mapping]] = ...) -> None: ...

class RowCounts(_message.Message):
    __slots__ = ("kept", "dropped", "failed")
    KEPT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    kept: int
    dropped: int
    failed: int
    def __init__(self, kept: _Optional[int] = ..., dropped: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class FilterReport(_message.Message):
    __slots__ = ("dropped_by", "near_dup_clusters", "judged", "judge_failures")
    class DroppedByEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DROPPED_BY_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUP_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    JUDGED_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    dropped_by: _containers.ScalarMap[str, int]
    near_dup_clusters: int
    judged: int
    judge_failures: int
    def __init__(self, dropped_by: _Optional[_Mapping[str, int]] = ..., near_dup_clusters: _Optional[int] = ..., judged: _Optional[int] = ..., judge_failures: _Optional[int] = ...) -> None: ...

class GenerationJob(_message.Message):
    __slots__ = ("job_id", "dataset_name", "dataset_path", "state", "target_rows", "counts", "usage", "error", "sha256", "size_bytes", "params_json", "created_at", "updated_at", "judge_usage", "report", "metadata_path")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_PATH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TARGET_ROWS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    JUDGE_USAGE_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    METADATA_PATH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    dataset_name: str
    dataset_path: str
    state: JobState
    target_rows: int
    counts: RowCounts
    usage: TokenUsage
    error: str
    sha256: str
    size_bytes: int
    params_json: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    judge_usage: TokenUsage
    report: FilterReport
    metadata_path: str
    def __init__(self, job_id: _Optional[str] = ..., dataset_name: _Optional[str] = ..., dataset_path: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., target_rows: _Optional[int] = ..., counts: _Optional[_Union[RowCounts, _Mapping]] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., error: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., params_json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., judge_usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., report: _Optional[_Union[FilterReport, _Mapping]] = ..., metadata_path: _Optional[str] = ...) -> None: ...

class StateChanged(_message.Message):
    __slots__ = ("state", "error")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    error: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., error: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("counts", "target_rows", "usage", "judge_usage", "report")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_ROWS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_USAGE_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    counts: RowCounts
    target_rows: int
    usage: TokenUsage
    judge_usage: TokenUsage
    report: FilterReport
    def __init__(self, counts: _Optional[_Union[RowCounts, _Mapping]] = ..., target_rows: _Optional[int] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., judge_usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., report: _Optional[_Union[FilterReport, _Mapping]] = ...) -> None: ...

class RowRejected(_message.Message):
    __slots__ = ("index", "instruction", "kind", "reason", "check")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    index: int
    instruction: str
    kind: str
    reason: str
    check: str
    def __init__(self, index: _Optional[int] = ..., instruction: _Optional[str] = ..., kind: _Optional[str] = ..., reason: _Optional[str] = ..., check: _Optional[str] = ...) -> None: ...

class JudgeFailed(_message.Message):
    __slots__ = ("index", "instruction", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    instruction: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., instruction: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DatasetWritten(_message.Message):
    __slots__ = ("dataset_path", "sha256", "size_bytes", "counts", "metadata_path", "report")
    DATASET_PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_PATH_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    dataset_path: str
    sha256: str
    size_bytes: int
    counts: RowCounts
    metadata_path: str
    report: FilterReport
    def __init__(self, dataset_path: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., counts: _Optional[_Union[RowCounts, _Mapping]] = ..., metadata_path: _Optional[str] = ..., report: _Optional[_Union[FilterReport, _Mapping]] = ...) -> None: ...

class GenerationEvent(_message.Message):
    __slots__ = ("seq", "time", "job_id", "state_changed", "progress", "row_rejected", "dataset_written", "judge_failed")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ROW_REJECTED_FIELD_NUMBER: _ClassVar[int]
    DATASET_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FAILED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    job_id: str
    state_changed: StateChanged
    progress: Progress
    row_rejected: RowRejected
    dataset_written: DatasetWritten
    judge_failed: JudgeFailed
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_id: _Optional[str] = ..., state_changed: _Optional[_Union[StateChanged, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., row_rejected: _Optional[_Union[RowRejected, _Mapping]] = ..., dataset_written: _Optional[_Union[DatasetWritten, _Mapping]] = ..., judge_failed: _Optional[_Union[JudgeFailed, _Mapping]] = ...) -> None: ...
