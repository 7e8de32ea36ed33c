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

class StartGenerationRequest(_message.Message):
    __slots__ = ("dataset_name", "endpoint", "limits", "sampling", "num_rows", "mode", "system_prompt", "prompt_template", "topic", "seed_examples", "instructions")
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
    def __init__(self, dataset_name: _Optional[str] = ..., endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., num_rows: _Optional[int] = ..., mode: _Optional[_Union[GenerationMode, str]] = ..., system_prompt: _Optional[str] = ..., prompt_template: _Optional[str] = ..., topic: _Optional[str] = ..., seed_examples: _Optional[_Iterable[str]] = ..., instructions: _Optional[_Iterable[str]] = ...) -> None: ...

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
    __slots__ = ("job_id", "token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    token: str
    def __init__(self, job_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

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

class GenerationJob(_message.Message):
    __slots__ = ("job_id", "dataset_name", "dataset_path", "state", "target_rows", "counts", "usage", "error", "sha256", "size_bytes", "params_json", "created_at", "updated_at")
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
    def __init__(self, job_id: _Optional[str] = ..., dataset_name: _Optional[str] = ..., dataset_path: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., target_rows: _Optional[int] = ..., counts: _Optional[_Union[RowCounts, _Mapping]] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ..., error: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., params_json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StateChanged(_message.Message):
    __slots__ = ("state", "error")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    error: str
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., error: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("counts", "target_rows", "usage")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_ROWS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    counts: RowCounts
    target_rows: int
    usage: TokenUsage
    def __init__(self, counts: _Optional[_Union[RowCounts, _Mapping]] = ..., target_rows: _Optional[int] = ..., usage: _Optional[_Union[TokenUsage, _Mapping]] = ...) -> None: ...

class RowRejected(_message.Message):
    __slots__ = ("index", "instruction", "kind", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    instruction: str
    kind: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., instruction: _Optional[str] = ..., kind: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DatasetWritten(_message.Message):
    __slots__ = ("dataset_path", "sha256", "size_bytes", "counts")
    DATASET_PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    dataset_path: str
    sha256: str
    size_bytes: int
    counts: RowCounts
    def __init__(self, dataset_path: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., counts: _Optional[_Union[RowCounts, _Mapping]] = ...) -> None: ...

class GenerationEvent(_message.Message):
    __slots__ = ("seq", "time", "job_id", "state_changed", "progress", "row_rejected", "dataset_written")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ROW_REJECTED_FIELD_NUMBER: _ClassVar[int]
    DATASET_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    job_id: str
    state_changed: StateChanged
    progress: Progress
    row_rejected: RowRejected
    dataset_written: DatasetWritten
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_id: _Optional[str] = ..., state_changed: _Optional[_Union[StateChanged, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., row_rejected: _Optional[_Union[RowRejected, _Mapping]] = ..., dataset_written: _Optional[_Union[DatasetWritten, _Mapping]] = ...) -> None: ...
