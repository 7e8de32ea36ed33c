"""Run configuration: what a fine-tune may ask for, its per-device defaults, and validation.

One config dataclass per concern (as in trl's scripts/sft.py), every field documented:
- `LoraOptions`: the adapter (rank, alpha, dropout, target modules);
- `TrainingOptions`: the optimisation and data settings;
- `DeviceOptions`: where and in which precision to train;
- `RunConfig`: one run: ids, base model, datasets, and the three above.

Any field left `None` takes its per-device default (the old app's strategy):

    device  precision  4-bit QLoRA                   r   alpha  dropout  batch  grad accum
    cuda    bfloat16   on when bitsandbytes imports  16  32     0.1      4      1
    mps     float16    never                         8   16     0.05     1      2
    cpu     float32    never                         8   16     0.05     1      2

and everywhere: 3 epochs, max_length 512, packing on, lr 2e-4.

`resolve(config)` validates every value and returns a `ResolvedConfig` with no
`None` left. It reads the base model's config.json (never its weights), so
impossible settings (a max_length above the model's maximum, a rank above its
hidden size, ...) are refused before a run is queued. Every refusal is an
`InvalidArgument` that names the field and says what would be accepted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from synthtune.errors import InvalidArgument
from synthtune.paths import validate_name

DEFAULT_BASE_MODEL_ID = "microsoft/Phi-3-mini-4k-instruct"

DeviceKind = Literal["cuda", "mps", "cpu"]
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")
LR_SCHEDULERS: tuple[str, ...] = ("linear", "cosine", "constant", "constant_with_warmup")

# Limits that separate "unusual" from "a typo". Each is named in the error message.
MAX_EPOCHS = 100
MAX_LEARNING_RATE = 1.0
MAX_BATCH_SIZE = 1024
MAX_GRAD_ACCUM = 1024
MIN_MAX_LENGTH = 16
MAX_RANK = 1024
MAX_ALPHA = 10_000.0
MAX_EVAL_FRACTION = 0.5  # exclusive
MIN_ROWS_FOR_EVAL = 20  # fewer rows than this: no held-out split, every row trains
MAX_SEED = 2**32 - 1
MAX_CHECKPOINT_STEPS = 1_000_000
MAX_CHECKPOINTS_KEPT = 100
MAX_NODES = 64
MAX_PROCESSES_PER_NODE = 64
MAX_EVAL_STEPS = 1_000_000
MAX_EVAL_GENERATE_ROWS = 1000
MAX_EVAL_NEW_TOKENS = 4096
MAX_PATIENCE = 1000
# The metrics an eval reports, as the "eval" events name them; the best checkpoint and early
# stopping follow one of them. The generation metrics need eval_generate_rows, the judge's a judge.
BEST_METRICS: tuple[str, ...] = ("eval_loss", "eval_mean_token_accuracy", "eval_exact_match", "eval_chrf",
                                 "eval_judge_score")
GENERATION_METRICS: tuple[str, ...] = ("eval_exact_match", "eval_chrf", "eval_judge_score")
REPORT_TO: tuple[str, ...] = ("none", "mlflow", "tensorboard")

_MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# config.json keys that hold a model's context length, most common first.
_MAX_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


@dataclass(frozen=True)
class DeviceDefaults:
    """The old app's per-device defaults (README "Fine-Tuning Details")."""

    dtype: str
    lora_r: int
    lora_dropout: float
    epochs: float
    batch_size: int
    gradient_accumulation_steps: int
    max_length: int
    gradient_checkpointing: bool


DEVICE_DEFAULTS: dict[str, DeviceDefaults] = {
    # Checkpointing trades ~30% speed for memory: worth it on a GPU with a 3.8B model, not on a CPU.
    # Batch sizes count packed bins of max_length tokens (several rows each). Without flash attention
    # a padding-free batch is one flattened sequence whose attention grows with the square of its
    # length, so CPU and MPS take one bin per micro-step (measured: 1.2x the tokens/s of two).
    "cuda": DeviceDefaults("bfloat16", 16, 0.1, 3.0, 4, 1, 512, True),
    "mps": DeviceDefaults("float16", 8, 0.05, 3.0, 1, 2, 512, False),
    "cpu": DeviceDefaults("float32", 8, 0.05, 3.0, 1, 2, 512, False),
}


@dataclass
class LoraOptions:
    """The LoRA adapter.

    Parameters:
        r: rank of the update matrices. `None`: 16 on CUDA, 8 on CPU/MPS. At most the
            model's hidden size (and 1024).
        alpha: scaling numerator (the update is scaled by alpha / r), in (0, 10000].
            `None`: 2 * r (32 on CUDA, 16 on CPU/MPS with their default ranks).
        dropout: dropout on the LoRA input, in [0, 1). `None`: 0.1 on CUDA, 0.05 on CPU/MPS.
        target_modules: which linear layers get an adapter. "auto": the architecture's
            table in trainer_svc.lora_targets, or every linear layer for other
            architectures; "all-linear": every linear layer but the output head; or a list
            of module names (leaf names such as "qkv_proj" or full dotted names). A list
            must cover every linear layer of the decoder; one that matches nothing, or only
            part of it, is refused (see lora_targets).
    """

    r: int | None = None
    alpha: float | None = None
    dropout: float | None = None
    target_modules: str | list[str] = "auto"


@dataclass
class TrainingOptions:
    """Optimisation and data settings.

    Parameters:
        epochs: passes over the training rows, in (0, 100]; fractions allowed. `None`: 3.
        learning_rate: peak AdamW learning rate, in (0, 1]. LoRA usually wants 1e-4 to 1e-3.
        batch_size: sequences per device per micro-step, 1..1024. With packing, a
            "sequence" is a bin of up to max_length tokens holding several rows, so an
            epoch has fewer, larger steps than without. `None`: 4 on CUDA, 1 on CPU/MPS.
        gradient_accumulation_steps: micro-steps per optimizer step, 1..1024.
            `None`: 1 on CUDA, 2 on CPU/MPS (the old app's values).
        max_length: longest tokenized row (prompt + answer + end token); longer rows are
            cut from the end (the validation report counts them). At least 16, at most the
            model's context length from its config.json. `None`: 512.
        eval_fraction: share of rows held out for the per-epoch eval loss, in [0, 0.5).
            The split is deterministic (seeded). With fewer than 20 rows nothing is held out.
            Not used when the run names eval_datasets (then resolved as 0).
        packing: True (default): rows are packed best-fit-decreasing into bins of
            max_length tokens and trained padding-free (trl packing="bfd"), with
            position ids resetting per row so rows never attend to each other. False: the
            old app's padded batches (each batch padded to its longest row).
        seed: seeds the split, the adapter's initialisation and the data order, 0..2**32-1.
        warmup_ratio: share of the steps spent warming the learning rate up, in [0, 1).
        lr_scheduler: "linear", "cosine", "constant" or "constant_with_warmup".
        gradient_checkpointing: recompute activations in the backward pass to save memory.
            `None`: on for CUDA, off for CPU/MPS.
        merge_full_model: also export the base model with the adapter merged in, under
            `<adapter>/merged/` (full size: 7.6 GB for Phi-3-mini in bf16).
        checkpoint_steps: save a checkpoint (adapter, optimizer, scheduler, RNG states) every
            N optimizer steps, 0..1,000,000 (0: only at the end of every epoch, which always
            saves one). A run whose process dies resumes from its newest checkpoint.
        checkpoint_keep: how many of the newest checkpoints are kept, 1..100.
        keep_checkpoints: a succeeded run keeps its checkpoints (default: deleted once the
            adapter is exported). Cancelled runs never keep theirs; failed runs keep them so
            they can be resumed by hand.
        eval_steps: when the held-out split is evaluated: 0 (default) at the end of every
            epoch, N every N optimizer steps (and at the last step), 0..1,000,000.
        eval_generate_rows: at each eval, also answer this many held-out rows greedily (the
            first N of the seeded split) with the model being trained, and report exact match
            and chrF against their references (and the judge's score, with a judge), 0..1000.
            0 (default): loss and token accuracy only.
        eval_max_new_tokens: the longest generated answer, 1..4096.
        best_metric: which eval metric picks the best checkpoint and drives early stopping:
            "eval_loss" (default, lower is better), "eval_mean_token_accuracy", "eval_exact_match",
            "eval_chrf" (these three need eval_generate_rows), "eval_judge_score" (needs a judge);
            higher is better for all but the loss.
        export_best: export the best checkpoint's weights (default) rather than the last step's;
            the manifest's "best_checkpoint" says which step was exported and why.
        early_stopping_patience: stop once `best_metric` has not improved for this many evals in a
            row, 0..1000 (0, the default: never stop early). Needs a held-out split.
        early_stopping_threshold: how much better than the best so far an eval must be to count
            as an improvement, >= 0.
        report_to: "none" (default), "mlflow" or "tensorboard": transformers' own integration
            also logs the run's parameters and metrics there. MLflow writes to MLFLOW_TRACKING_URI
            (default: the file store <data_root>/mlruns), TensorBoard to runs/<run_id>/tensorboard.
    """

    epochs: float | None = None
    learning_rate: float = 2e-4
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    max_length: int | None = None
    eval_fraction: float = 0.1
    packing: bool = True
    seed: int = 42
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    gradient_checkpointing: bool | None = None
    merge_full_model: bool = False
    checkpoint_steps: int = 50
    checkpoint_keep: int = 2
    keep_checkpoints: bool = False
    eval_steps: int = 0
    eval_generate_rows: int = 0
    eval_max_new_tokens: int = 128
    best_metric: str = "eval_loss"
    export_best: bool = True
    early_stopping_patience: int = 0
    early_stopping_threshold: float = 0.0
    report_to: str = "none"


@dataclass
class DeviceOptions:
    """Where to train.

    Parameters:
        device: "auto" (CUDA, else MPS, else CPU), "cuda", "mps" or "cpu". Naming a
            device this machine lacks is refused.
        quantize_4bit: load the base model in 4-bit NF4 through bitsandbytes (QLoRA).
            `None`: on for CUDA when bitsandbytes imports, else off. Only on CUDA.
    """

    device: str = "auto"
    quantize_4bit: bool | None = None


@dataclass
class DistributedOptions:
    """How many training processes (data parallel, DDP), and on how many machines.

    Parameters:
        num_nodes: machines, 1..MAX_NODES.
        processes_per_node: training processes per machine, 1..MAX_PROCESSES_PER_NODE.
            `None`: one per visible GPU, else 1. More than one needs a launcher that
            starts them (the service's SYNTHTUNE_TRAINER_LAUNCHER=torchrun).
    """

    num_nodes: int = 1
    processes_per_node: int | None = None


@dataclass
class RunConfig:
    """One fine-tuning run, as the service stores it in the run folder and the child reads it.

    Parameters:
        run_id: the run's id, a plain name (letters, digits, '.', '-', '_').
        data_root: the data root holding datasets/, runs/ and adapters/.
        datasets: dataset files relative to the data root, such as "datasets/faq.jsonl".
        base_model_id: the canonical id recorded in the adapter (adapter_config.json and
            manifest), such as "microsoft/Phi-3-mini-4k-instruct". vLLM checks it against
            the model it serves.
        base_model_path: the local folder to load the base model from. `None`: the
            Hugging Face cache entry of base_model_id (offline; nothing is downloaded).
        adapter_name: stem of the exported folder, adapters/<stem>-v<N>. `None`:
            "<last part of base_model_id>-lora".
        lora, training, device, distributed: see their classes.
        dataset_refs: the exact versions the caller means, one per entry of `datasets` and in
            its order: {"path", "name", "version", "sha256"}. Empty: any content of the files.
            A file whose sha256 differs is refused (FailedPrecondition) and the adapter's
            manifest names each version.
        eval_datasets: a separate eval split (OpenAI's validation_file), checked as `datasets`
            are; errors name "eval_datasets". Given, the evals run on exactly these rows and
            eval_fraction is not used (resolved as 0: nothing is held out of `datasets`). No
            file may be in both lists.
        eval_dataset_refs: their exact versions, as dataset_refs are for `datasets`.
    """

    run_id: str
    data_root: str
    datasets: list[str]
    base_model_id: str = DEFAULT_BASE_MODEL_ID
    base_model_path: str | None = None
    adapter_name: str | None = None
    lora: LoraOptions = field(default_factory=LoraOptions)
    training: TrainingOptions = field(default_factory=TrainingOptions)
    device: DeviceOptions = field(default_factory=DeviceOptions)
    distributed: DistributedOptions = field(default_factory=DistributedOptions)
    dataset_refs: list[dict[str, Any]] = field(default_factory=list)
    eval_datasets: list[str] = field(default_factory=list)
    eval_dataset_refs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from JSON-like data; unknown fields are refused (a typo must not pass silently)."""
        if not isinstance(data, dict):
            raise InvalidArgument("the run config must be an object.", field="config")
        data = dict(data)
        parts = {"lora": LoraOptions, "training": TrainingOptions, "device": DeviceOptions,
                 "distributed": DistributedOptions}
        for key, klass in parts.items():
            value = data.get(key)
            if value is None:
                data.pop(key, None)
            elif isinstance(value, dict):
                data[key] = _build(klass, value, prefix=f"{key}.")
            elif not isinstance(value, klass):
                raise InvalidArgument(f"{key} must be an object.", field=key)
        return _build(cls, data, prefix="")


def _build(klass, data: dict[str, Any], *, prefix: str):
    names = {f.name for f in dataclasses.fields(klass)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidArgument(
            f"unknown field(s) {', '.join(prefix + u for u in unknown)}; known: {', '.join(sorted(names))}.",
            field=prefix + unknown[0],
        )
    try:
        return klass(**data)
    except TypeError as exc:  # a required field is missing
        where = prefix.rstrip(".") or "config"
        raise InvalidArgument(f"{where}: {exc}", field=where) from exc


@dataclass(frozen=True)
class DevicePlan:
    """The device strategy a run uses. `dtype` is the base model's load precision."""

    kind: DeviceKind
    dtype: str  # "float32" | "bfloat16" | "float16"
    quantize_4bit: bool

    @property
    def use_cpu(self) -> bool:
        return self.kind == "cpu"


@dataclass(frozen=True)
class ModelInfo:
    """What config.json says about the base model (read without loading weights)."""

    path: Path
    architecture: str
    model_type: str
    max_positions: int | None
    hidden_size: int | None


@dataclass(frozen=True)
class ResolvedLora:
    r: int
    alpha: float
    dropout: float
    target_modules: str | tuple[str, ...]  # as requested; lora_targets turns it into module names


@dataclass(frozen=True)
class ResolvedTraining:
    epochs: float
    learning_rate: float
    batch_size: int
    gradient_accumulation_steps: int
    max_length: int
    eval_fraction: float
    packing: bool
    seed: int
    warmup_ratio: float
    lr_scheduler: str
    gradient_checkpointing: bool
    merge_full_model: bool
    checkpoint_steps: int
    checkpoint_keep: int
    keep_checkpoints: bool
    eval_steps: int = 0
    eval_generate_rows: int = 0
    eval_max_new_tokens: int = 128
    best_metric: str = "eval_loss"
    export_best: bool = True
    early_stopping_patience: int = 0
    early_stopping_threshold: float = 0.0
    report_to: str = "none"

    @property
    def greater_is_better(self) -> bool:
        return not self.best_metric.endswith("loss")


@dataclass(frozen=True)
class ResolvedDistributed:
    num_nodes: int
    processes_per_node: int

    @property
    def world_size(self) -> int:
        return self.num_nodes * self.processes_per_node


@dataclass(frozen=True)
class ResolvedConfig:
    """A validated run config with every default filled in."""

    run: RunConfig
    data_root: Path
    model: ModelInfo
    device: DevicePlan
    lora: ResolvedLora
    training: ResolvedTraining
    adapter_stem: str
    distributed: ResolvedDistributed

    @property
    def effective_batch_size(self) -> int:
        """Sequences (packed bins, with packing) per optimizer step, over every process."""
        return self.training.batch_size * self.training.gradient_accumulation_steps * self.distributed.world_size

    def hyperparameters(self) -> dict[str, Any]:
        """The values training used, for the manifest and the run folder."""
        lora = dataclasses.asdict(self.lora)
        if isinstance(self.lora.target_modules, tuple):
            lora["target_modules"] = list(self.lora.target_modules)
        return {
            "lora": lora,
            "training": dataclasses.asdict(self.training),
            "device": {"kind": self.device.kind, "dtype": self.device.dtype, "quantize_4bit": self.device.quantize_4bit},
            "distributed": {**dataclasses.asdict(self.distributed), "world_size": self.distributed.world_size,
                            "effective_batch_size": self.effective_batch_size},
        }


def resolve(config: RunConfig, *, available_devices: tuple[str, ...] | None = None,
            gpus_per_node: int | None = None) -> ResolvedConfig:
    """Validate `config` and fill in per-device defaults; raise InvalidArgument naming the first bad field.

    Reads the base model's config.json but loads no weights. `available_devices`
    replaces probing torch for CUDA and MPS, and `gpus_per_node` counting the GPUs
    visible here: for tests, and for a service whose runs train on other machines
    (the kubeflow launcher).
    """
    validate_name(config.run_id, field="run_id")
    data_root = _data_root(config.data_root)
    _validate_dataset_list(config.datasets)
    _validate_dataset_refs(config.datasets, config.dataset_refs)
    _validate_eval_datasets(config)
    model = locate_model(config.base_model_id, config.base_model_path)
    device = _device_plan(config.device, available_devices or detect_devices())
    defaults = DEVICE_DEFAULTS[device.kind]
    lora = _resolve_lora(config.lora, defaults, model)
    training = _resolve_training(config.training, defaults, model)
    if config.eval_datasets:  # the eval split is those files: nothing is held out of the training data
        training = dataclasses.replace(training, eval_fraction=0.0)
    stem = config.adapter_name or f"{config.base_model_id.rsplit('/', 1)[-1]}-lora"
    validate_name(stem, field="adapter_name")
    if len(stem) > 100:  # room for the "-v<N>" suffix within 128 characters
        raise InvalidArgument("adapter_name must be at most 100 characters.", field="adapter_name")
    distributed = _resolve_distributed(config.distributed, device, gpus_per_node)
    return ResolvedConfig(config, data_root, model, device, lora, training, stem, distributed)


def _resolve_distributed(options: DistributedOptions, device: DevicePlan,
                         gpus_per_node: int | None) -> ResolvedDistributed:
    _check_int("num_nodes", options.num_nodes, 1, MAX_NODES)
    gpus, where = (visible_gpus(), "visible here") if gpus_per_node is None else (gpus_per_node, "per node")
    per_node = options.processes_per_node
    if per_node is None:
        per_node = max(gpus, 1) if device.kind == "cuda" else 1
    _check_int("processes_per_node", per_node, 1, MAX_PROCESSES_PER_NODE)
    if device.kind == "cuda" and per_node > max(gpus, 1):
        raise InvalidArgument(f"processes_per_node={per_node} is more than the {gpus} GPU(s) {where}.",
                              field="processes_per_node")
    if device.kind == "mps" and per_node > 1:
        raise InvalidArgument("MPS trains in one process: processes_per_node must be 1.", field="processes_per_node")
    return ResolvedDistributed(options.num_nodes, per_node)


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def detect_devices() -> tuple[str, ...]:
    """The devices torch can use here, best first; "cpu" is always last."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return tuple(found)


def bitsandbytes_available() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA setup raising at import
        return False
    return True


def _cuda_supports_bf16() -> bool:
    import torch

    return not torch.cuda.is_available() or torch.cuda.is_bf16_supported()


def locate_model(base_model_id: str, base_model_path: str | None) -> ModelInfo:
    """Find the base model's folder and read its config.json; nothing is downloaded."""
    if not isinstance(base_model_id, str) or not _MODEL_ID_RE.match(base_model_id) or ".." in base_model_id:
        raise InvalidArgument(
            f"base_model_id {base_model_id!r} must look like 'org/name' or 'name' "
            "(letters, digits, '.', '-', '_').",
            field="base_model_id",
        )
    if base_model_path:
        folder = Path(base_model_path)
        if not (folder / "config.json").is_file():
            raise InvalidArgument(
                f"base_model_path {base_model_path!r} is not a model folder (no config.json there).",
                field="base_model_path",
            )
    else:
        folder = _cached_snapshot(base_model_id)
    return read_model_info(folder)


def _cached_snapshot(model_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError and friends: nothing cached
        raise InvalidArgument(
            f"base model {model_id!r} is not available locally ({type(exc).__name__}); "
            "download it into the Hugging Face cache or give base_model_path.",
            field="base_model_id",
        ) from exc


def read_model_info(folder: Path) -> ModelInfo:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{folder}/config.json cannot be read: {exc}", field="base_model_path") from exc
    architectures = config.get("architectures") or []
    architecture = architectures[0] if architectures else ""
    if not architecture.endswith("ForCausalLM"):
        raise InvalidArgument(
            f"the base model is a {architecture or 'model without an architecture'}; "
            "fine-tuning needs a causal language model (…ForCausalLM).",
            field="base_model_id",
        )
    max_positions = next((config[k] for k in _MAX_POSITION_KEYS if isinstance(config.get(k), int)), None)
    hidden = config.get("hidden_size") if isinstance(config.get("hidden_size"), int) else None
    return ModelInfo(folder, architecture, str(config.get("model_type", "")), max_positions, hidden)


def _data_root(value: str) -> Path:
    if not value:
        raise InvalidArgument("data_root is required.", field="data_root")
    root = Path(value)
    if not root.is_dir():
        raise InvalidArgument(f"data_root {value!r} is not a folder.", field="data_root")
    return root


def _validate_dataset_list(datasets: list[str], *, field: str = "datasets", required: bool = True) -> None:
    if not isinstance(datasets, list) or (required and not datasets):
        raise InvalidArgument(f"{field} must list at least one dataset file.", field=field)
    if not all(isinstance(d, str) for d in datasets):
        raise InvalidArgument(f"{field} must be a list of relative paths.", field=field)
    if len(set(datasets)) != len(datasets):
        raise InvalidArgument(f"{field} lists the same file twice.", field=field)


def _validate_eval_datasets(config: RunConfig) -> None:
    _validate_dataset_list(config.eval_datasets, field="eval_datasets", required=False)
    both = sorted(set(config.eval_datasets) & set(config.datasets))
    if both:
        raise InvalidArgument(f"eval_datasets names {both[0]!r}, which is also in datasets: a run must not "
                              "be evaluated on rows it trains on.", field="eval_datasets")
    _validate_dataset_refs(config.eval_datasets, config.eval_dataset_refs, field="eval_dataset_refs",
                           paths_field="eval_datasets")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _validate_dataset_refs(datasets: list[str], refs: list[dict[str, Any]], *, field: str = "dataset_refs",
                           paths_field: str = "datasets") -> None:
    if not refs:
        return
    if not isinstance(refs, list) or [r.get("path") if isinstance(r, dict) else None for r in refs] != datasets:
        raise InvalidArgument(f"{field} must name the same paths as {paths_field}, in the same order.",
                              field=field)
    for ref in refs:
        if not isinstance(ref.get("name"), str) or not ref["name"]:
            raise InvalidArgument(f"{field} entry for {ref['path']!r} needs a name.", field=field)
        if not isinstance(ref.get("version"), int) or ref["version"] < 1:
            raise InvalidArgument(f"{field} entry {ref['name']!r} needs a version from 1.", field=field)
        if not isinstance(ref.get("sha256"), str) or not _SHA256.match(ref["sha256"]):
            raise InvalidArgument(f"{field} entry {ref['name']!r} needs a sha256 (64 lowercase hex digits).",
                                  field=field)


def _device_plan(options: DeviceOptions, available: tuple[str, ...]) -> DevicePlan:
    if options.device not in DEVICE_CHOICES:
        raise InvalidArgument(
            f"device must be one of {', '.join(DEVICE_CHOICES)}, not {options.device!r}.", field="device"
        )
    kind = available[0] if options.device == "auto" else options.device
    if kind not in available:
        raise InvalidArgument(
            f"device {kind!r} is not available here (available: {', '.join(available)}).", field="device"
        )
    quantize = options.quantize_4bit
    if quantize and kind != "cuda":
        raise InvalidArgument(
            f"quantize_4bit (QLoRA) needs a CUDA device; this run trains on {kind}.", field="quantize_4bit"
        )
    if quantize and not bitsandbytes_available():
        raise InvalidArgument("quantize_4bit needs bitsandbytes, which does not import here.", field="quantize_4bit")
    if quantize is None:
        quantize = kind == "cuda" and bitsandbytes_available()
    dtype = DEVICE_DEFAULTS[kind].dtype
    if kind == "cuda" and not _cuda_supports_bf16():  # pre-Ampere GPUs
        dtype = "float16"
    return DevicePlan(kind, dtype, bool(quantize))  # type: ignore[arg-type]


def _resolve_lora(options: LoraOptions, defaults: DeviceDefaults, model: ModelInfo) -> ResolvedLora:
    r = defaults.lora_r if options.r is None else options.r
    _check_int("r", r, 1, MAX_RANK, hint="ranks of 8 to 64 are usual")
    if model.hidden_size is not None and r > model.hidden_size:
        raise InvalidArgument(
            f"r={r} exceeds the model's hidden size ({model.hidden_size}); a LoRA rank above it adds nothing.",
            field="r",
        )
    # The defaults keep alpha = 2 * r (the old app's 32/16 for ranks 16/8), also for a rank given alone.
    alpha = 2.0 * r if options.alpha is None else options.alpha
    _check_float("alpha", alpha, low=0.0, high=MAX_ALPHA, low_open=True, hint="alpha is usually r or 2*r")
    dropout = defaults.lora_dropout if options.dropout is None else options.dropout
    _check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)
    targets = options.target_modules
    if isinstance(targets, str):
        if not targets.strip():
            raise InvalidArgument("target_modules must be 'auto', 'all-linear' or a list of names.",
                                  field="target_modules")
        resolved_targets: str | tuple[str, ...] = targets.strip()
    elif isinstance(targets, (list, tuple)) and targets and all(isinstance(t, str) and t.strip() for t in targets):
        resolved_targets = tuple(t.strip() for t in targets)
    else:
        raise InvalidArgument(
            "target_modules must be 'auto', 'all-linear' or a non-empty list of module names.",
            field="target_modules",
        )
    return ResolvedLora(r, alpha, float(dropout), resolved_targets)


def _resolve_training(options: TrainingOptions, defaults: DeviceDefaults, model: ModelInfo) -> ResolvedTraining:
    epochs = defaults.epochs if options.epochs is None else options.epochs
    _check_float("epochs", epochs, low=0.0, high=float(MAX_EPOCHS), low_open=True,
                 hint="1 to 5 epochs are usual for LoRA")
    lr = options.learning_rate
    _check_float("learning_rate", lr, low=0.0, high=MAX_LEARNING_RATE, low_open=True,
                 hint="LoRA usually wants 1e-4 to 1e-3")
    batch = defaults.batch_size if options.batch_size is None else options.batch_size
    _check_int("batch_size", batch, 1, MAX_BATCH_SIZE)
    accum = defaults.gradient_accumulation_steps if options.gradient_accumulation_steps is None \
        else options.gradient_accumulation_steps
    _check_int("gradient_accumulation_steps", accum, 1, MAX_GRAD_ACCUM)
    max_length = defaults.max_length if options.max_length is None else options.max_length
    upper = model.max_positions or 1_000_000
    _check_int("max_length", max_length, MIN_MAX_LENGTH, upper)
    _check_float("eval_fraction", options.eval_fraction, low=0.0, high=MAX_EVAL_FRACTION, high_open=True,
                 hint="0.1 holds out 10% of the rows; 0 turns the eval split off")
    _check_bool("packing", options.packing)
    _check_int("seed", options.seed, 0, MAX_SEED)
    _check_float("warmup_ratio", options.warmup_ratio, low=0.0, high=1.0, high_open=True)
    if options.lr_scheduler not in LR_SCHEDULERS:
        raise InvalidArgument(
            f"lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}, not {options.lr_scheduler!r}.",
            field="lr_scheduler",
        )
    checkpointing = defaults.gradient_checkpointing if options.gradient_checkpointing is None \
        else options.gradient_checkpointing
    _check_bool("gradient_checkpointing", checkpointing)
    _check_bool("merge_full_model", options.merge_full_model)
    _check_int("checkpoint_steps", options.checkpoint_steps, 0, MAX_CHECKPOINT_STEPS,
               hint="0 saves only at the end of every epoch")
    _check_int("checkpoint_keep", options.checkpoint_keep, 1, MAX_CHECKPOINTS_KEPT)
    _check_bool("keep_checkpoints", options.keep_checkpoints)
    _check_int("eval_steps", options.eval_steps, 0, MAX_EVAL_STEPS, hint="0 evaluates at every epoch's end")
    _check_int("eval_generate_rows", options.eval_generate_rows, 0, MAX_EVAL_GENERATE_ROWS,
               hint="16 rows are usually enough to follow exact match and chrF")
    _check_int("eval_max_new_tokens", options.eval_max_new_tokens, 1, MAX_EVAL_NEW_TOKENS)
    if options.best_metric not in BEST_METRICS:
        raise InvalidArgument(
            f"best_metric must be one of {', '.join(BEST_METRICS)}, not {options.best_metric!r}.",
            field="best_metric")
    if options.best_metric in GENERATION_METRICS and not options.eval_generate_rows:
        raise InvalidArgument(
            f"best_metric {options.best_metric} is a generation metric: set eval_generate_rows above 0.",
            field="best_metric")
    _check_bool("export_best", options.export_best)
    _check_int("early_stopping_patience", options.early_stopping_patience, 0, MAX_PATIENCE,
               hint="0 never stops early")
    _check_float("early_stopping_threshold", options.early_stopping_threshold, low=0.0, high=math.inf,
                 high_open=True)
    if options.report_to not in REPORT_TO:
        raise InvalidArgument(f"report_to must be one of {', '.join(REPORT_TO)}, not {options.report_to!r}.",
                              field="report_to")
    return ResolvedTraining(
        epochs=float(epochs), learning_rate=float(lr), batch_size=batch, gradient_accumulation_steps=accum,
        max_length=max_length, eval_fraction=float(options.eval_fraction), packing=options.packing,
        seed=options.seed, warmup_ratio=float(options.warmup_ratio), lr_scheduler=options.lr_scheduler,
        gradient_checkpointing=checkpointing, merge_full_model=options.merge_full_model,
        checkpoint_steps=options.checkpoint_steps, checkpoint_keep=options.checkpoint_keep,
        keep_checkpoints=options.keep_checkpoints, eval_steps=options.eval_steps,
        eval_generate_rows=options.eval_generate_rows, eval_max_new_tokens=options.eval_max_new_tokens,
        best_metric=options.best_metric, export_best=options.export_best,
        early_stopping_patience=options.early_stopping_patience,
        early_stopping_threshold=float(options.early_stopping_threshold), report_to=options.report_to,
    )


def _check_int(name: str, value: Any, low: int, high: int, *, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be a whole number, not {value!r}.", field=name)
    if not low <= value <= high:
        where = "the model's context length" if name == "max_length" and high != 1_000_000 else ""
        limit = f"{high} ({where})" if where else str(high)
        message = f"{name}={value} is out of range: it must be between {low} and {limit}."
        raise InvalidArgument(f"{message} {hint.capitalize()}." if hint else message, field=name)


def _check_float(name: str, value: Any, *, low: float, high: float, low_open: bool = False,
                 high_open: bool = False, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number, not {value!r}.", field=name)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        message = f"{name}={value:g} is out of range: it must be in {interval}."
        raise InvalidArgument(f"{message} {hint.capitalize()}." if hint else message, field=name)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be true or false, not {value!r}.", field=name)
