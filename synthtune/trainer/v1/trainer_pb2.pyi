import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_VALIDATING: _ClassVar[RunState]
    RUN_STATE_QUEUED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_VALIDATING: RunState
RUN_STATE_QUEUED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState

class Hyperparameters(_message.Message):
    __slots__ = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "epochs", "learning_rate", "batch_size", "gradient_accumulation_steps", "max_length", "eval_fraction", "packing", "seed", "device", "quantize_4bit", "num_nodes", "processes_per_node", "keep_checkpoints", "eval_steps", "eval_generate_rows", "eval_max_new_tokens", "best_metric", "export_best", "early_stopping_patience", "early_stopping_threshold", "report_to")
    LORA_R_FIELD_NUMBER: _ClassVar[int]
    LORA_ALPHA_FIELD_NUMBER: _ClassVar[int]
    LORA_DROPOUT_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_ACCUMULATION_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    EVAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    PACKING_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZE_4BIT_FIELD_NUMBER: _ClassVar[int]
    NUM_NODES_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    KEEP_CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    EVAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    EVAL_GENERATE_ROWS_FIELD_NUMBER: _ClassVar[int]
    EVAL_MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    BEST_METRIC_FIELD_NUMBER: _ClassVar[int]
    EXPORT_BEST_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_PATIENCE_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REPORT_TO_FIELD_NUMBER: _ClassVar[int]
    lora_r: int
    lora_alpha: float
    lora_dropout: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    epochs: float
    learning_rate: float
    batch_size: int
    gradient_accumulation_steps: int
    max_length: int
    eval_fraction: float
    packing: bool
    seed: int
    device: str
    quantize_4bit: bool
    num_nodes: int
    processes_per_node: int
    keep_checkpoints: bool
    eval_steps: int
    eval_generate_rows: int
    eval_max_new_tokens: int
    best_metric: str
    export_best: bool
    early_stopping_patience: int
    early_stopping_threshold: float
    report_to: str
    def __init__(self, lora_r: _Optional[int] = ..., lora_alpha: _Optional[float] = ..., lora_dropout: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ..., epochs: _Optional[float] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., gradient_accumulation_steps: _Optional[int] = ..., max_length: _Optional[int] = ..., eval_fraction: _Optional[float] = ..., packing: _Optional[bool] = ..., seed: _Optional[int] = ..., device: _Optional[str] = ..., quantize_4bit: _Optional[bool] = ..., num_nodes: _Optional[int] = ..., processes_per_node: _Optional[int] = ..., keep_checkpoints: _Optional[bool] = ..., eval_steps: _Optional[int] = ..., eval_generate_rows: _Optional[int] = ..., eval_max_new_tokens: _Optional[int] = ..., best_metric: _Optional[str] = ..., export_best: _Optional[bool] = ..., early_stopping_patience: _Optional[int] = ..., early_stopping_threshold: _Optional[float] = ..., report_to: _Optional[str] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("base_model", "datasets", "hyperparameters", "adapter_name", "merge_full_model", "dataset_refs", "eval_datasets", "eval_dataset_refs")
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    MERGE_FULL_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_REFS_FIELD_NUMBER: _ClassVar[int]
    EVAL_DATASETS_FIELD_NUMBER: _ClassVar[int]
    EVAL_DATASET_REFS_FIELD_NUMBER: _ClassVar[int]
    base_model: str
    datasets: _containers.RepeatedScalarFieldContainer[str]
    hyperparameters: Hyperparameters
    adapter_name: str
    merge_full_model: bool
    dataset_refs: _containers.RepeatedCompositeFieldContainer[DatasetRef]
    eval_datasets: _containers.RepeatedScalarFieldContainer[str]
    eval_dataset_refs: _containers.RepeatedCompositeFieldContainer[DatasetRef]
    def __init__(self, base_model: _Optional[str] = ..., datasets: _Optional[_Iterable[str]] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., adapter_name: _Optional[str] = ..., merge_full_model: _Optional[bool] = ..., dataset_refs: _Optional[_Iterable[_Union[DatasetRef, _Mapping]]] = ..., eval_datasets: _Optional[_Iterable[str]] = ..., eval_dataset_refs: _Optional[_Iterable[_Union[DatasetRef, _Mapping]]] = ...) -> None: ...

class DatasetRef(_message.Message):
    __slots__ = ("path", "name", "version", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    name: str
    version: int
    sha256: str
    def __init__(self, path: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id", "after_seq")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    after_seq: int
    def __init__(self, run_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ResumeRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ResumeRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class DatasetReport(_message.Message):
    __slots__ = ("path", "sha256", "rows", "format", "size_bytes", "name", "version")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    rows: int
    format: str
    size_bytes: int
    name: str
    version: int
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., rows: _Optional[int] = ..., format: _Optional[str] = ..., size_bytes: _Optional[int] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "state", "base_model", "datasets", "config_json", "error", "step", "max_steps", "epoch", "adapter_path", "prompt_format", "created_at", "updated_at", "queue_position", "metrics_json", "train_rows", "eval_rows", "truncated_rows", "resumed_from_step", "resumes", "eval_datasets")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_PATH_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    EVAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_ROWS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    RESUMES_FIELD_NUMBER: _ClassVar[int]
    EVAL_DATASETS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: RunState
    base_model: str
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetReport]
    config_json: str
    error: str
    step: int
    max_steps: int
    epoch: float
    adapter_path: str
    prompt_format: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    queue_position: int
    metrics_json: str
    train_rows: int
    eval_rows: int
    truncated_rows: int
    resumed_from_step: int
    resumes: int
    eval_datasets: _containers.RepeatedCompositeFieldContainer[DatasetReport]
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., base_model: _Optional[str] = ..., datasets: _Optional[_Iterable[_Union[DatasetReport, _Mapping]]] = ..., config_json: _Optional[str] = ..., error: _Optional[str] = ..., step: _Optional[int] = ..., max_steps: _Optional[int] = ..., epoch: _Optional[float] = ..., adapter_path: _Optional[str] = ..., prompt_format: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queue_position: _Optional[int] = ..., metrics_json: _Optional[str] = ..., train_rows: _Optional[int] = ..., eval_rows: _Optional[int] = ..., truncated_rows: _Optional[int] = ..., resumed_from_step: _Optional[int] = ..., resumes: _Optional[int] = ..., eval_datasets: _Optional[_Iterable[_Union[DatasetReport, _Mapping]]] = ...) -> None: ...

class StateChanged(_message.Message):
    __slots__ = ("state", "error")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    state: RunState
    error: str
    def __init__(self, state: _Optional[_Union[RunState, str]] = ..., error: _Optional[str] = ...) -> None: ...

class StepMetrics(_message.Message):
    __slots__ = ("step", "max_steps", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s", "eta_s")
    STEP_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    step: int
    max_steps: int
    epoch: float
    loss: float
    learning_rate: float
    grad_norm: float
    tokens_per_s: float
    eta_s: float
    def __init__(self, step: _Optional[int] = ..., max_steps: _Optional[int] = ..., epoch: _Optional[float] = ..., loss: _Optional[float] = ..., learning_rate: _Optional[float] = ..., grad_norm: _Optional[float] = ..., tokens_per_s: _Optional[float] = ..., eta_s: _Optional[float] = ...) -> None: ...

class EvalMetrics(_message.Message):
    __slots__ = ("step", "epoch", "eval_loss", "max_steps", "eval_mean_token_accuracy", "eval_exact_match", "eval_chrf", "eval_judge_score", "metric", "is_best", "runtime_s", "generation_s")
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EVAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    EVAL_MEAN_TOKEN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EVAL_EXACT_MATCH_FIELD_NUMBER: _ClassVar[int]
    EVAL_CHRF_FIELD_NUMBER: _ClassVar[int]
    EVAL_JUDGE_SCORE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    IS_BEST_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_S_FIELD_NUMBER: _ClassVar[int]
    GENERATION_S_FIELD_NUMBER: _ClassVar[int]
    step: int
    epoch: float
    eval_loss: float
    max_steps: int
    eval_mean_token_accuracy: float
    eval_exact_match: float
    eval_chrf: float
    eval_judge_score: float
    metric: str
    is_best: bool
    runtime_s: float
    generation_s: float
    def __init__(self, step: _Optional[int] = ..., epoch: _Optional[float] = ..., eval_loss: _Optional[float] = ..., max_steps: _Optional[int] = ..., eval_mean_token_accuracy: _Optional[float] = ..., eval_exact_match: _Optional[float] = ..., eval_chrf: _Optional[float] = ..., eval_judge_score: _Optional[float] = ..., metric: _Optional[str] = ..., is_best: _Optional[bool] = ..., runtime_s: _Optional[float] = ..., generation_s: _Optional[float] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("level", "message")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    level: str
    message: str
    def __init__(self, level: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ArtifactExported(_message.Message):
    __slots__ = ("adapter_path", "adapter_name", "weights_sha256", "merged_model_path")
    ADAPTER_PATH_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    MERGED_MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    adapter_path: str
    adapter_name: str
    weights_sha256: str
    merged_model_path: str
    def __init__(self, adapter_path: _Optional[str] = ..., adapter_name: _Optional[str] = ..., weights_sha256: _Optional[str] = ..., merged_model_path: _Optional[str] = ...) -> None: ...

class Resumed(_message.Message):
    __slots__ = ("step", "resumes")
    STEP_FIELD_NUMBER: _ClassVar[int]
    RESUMES_FIELD_NUMBER: _ClassVar[int]
    step: int
    resumes: int
    def __init__(self, step: _Optional[int] = ..., resumes: _Optional[int] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("seq", "time", "run_id", "state_changed", "step", "eval", "log", "exported", "resumed")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    EVAL_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    run_id: str
    state_changed: StateChanged
    step: StepMetrics
    eval: EvalMetrics
    log: LogLine
    exported: ArtifactExported
    resumed: Resumed
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_id: _Optional[str] = ..., state_changed: _Optional[_Union[StateChanged, _Mapping]] = ..., step: _Optional[_Union[StepMetrics, _Mapping]] = ..., eval: _Optional[_Union[EvalMetrics, _Mapping]] = ..., log: _Optional[_Union[LogLine, _Mapping]] = ..., exported: _Optional[_Union[ArtifactExported, _Mapping]] = ..., resumed: _Optional[_Union[Resumed, _Mapping]] = ...) -> None: ...
