"""Which linear layers get a LoRA adapter, resolved per architecture and asserted.

peft matches `target_modules` by name and silently skips what does not match:
given Llama's names, Phi-3 (fused `qkv_proj` and `gate_up_proj`) gets adapters on
`o_proj` and `down_proj` only, and trains a quarter of what was meant. So:

1. `resolve_targets` builds the model on the meta device from its config.json (no
   weights, no memory), lists its linear layers (all but the output head), and
   refuses a request that would not wrap every one of them: a list that matches
   nothing, matches only part of the model, or names a layer that is not linear.
2. `assert_wrapped` counts the LoRA layers after `get_peft_model` and compares
   them, name by name, with the plan.

Every accepted plan wraps every linear layer of the decoder; what differs is how
it is spelled. The adapter's config records the leaf names (such as `qkv_proj`),
which is what vLLM reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthtune.errors import InvalidArgument, SynthtuneError

ALL_LINEAR = "all-linear"
AUTO = "auto"

_LLAMA_STYLE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# The explicit table. Each entry must name every linear layer of the decoder;
# resolve_targets checks that against the real module tree.
ARCHITECTURE_TARGETS: dict[str, tuple[str, ...]] = {
    "Phi3ForCausalLM": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "LlamaForCausalLM": _LLAMA_STYLE,
    "MistralForCausalLM": _LLAMA_STYLE,
    "Qwen2ForCausalLM": _LLAMA_STYLE,
}


@dataclass(frozen=True)
class TargetPlan:
    """What `get_peft_model` must wrap.

    target_modules: the leaf names handed to `LoraConfig(target_modules=...)`.
    module_names: the full names of the layers that must end up wrapped.
    source: "table" (the architecture's entry), "all-linear", or "list" (the caller's).
    """

    architecture: str
    source: str
    target_modules: tuple[str, ...]
    module_names: tuple[str, ...]

    @property
    def expected_count(self) -> int:
        return len(self.module_names)


class LoraTargetMismatch(SynthtuneError):
    """peft wrapped other layers than the validated plan: a bug, never a user error."""


def resolve_targets(requested: str | Iterable[str], model_dir: Path) -> TargetPlan:
    """Validate `requested` ("auto", "all-linear" or names) against the model in `model_dir`.

    Builds the model on the meta device: seconds for the imports, no weights read.
    Raises InvalidArgument(field="target_modules") with the model's real layer names.
    """
    model = build_meta_model(model_dir)
    architecture = type(model).__name__
    return plan_targets(
        requested,
        architecture=architecture,
        linear_names=linear_layer_names(model),
        module_names=[name for name, _ in model.named_modules() if name],
        head_names=_output_head_names(model),
    )


def build_meta_model(model_dir: Path) -> Any:
    """The model's module tree on the meta device (parameters without storage)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def linear_layer_names(model: Any) -> list[str]:
    """Full names of the layers LoRA can wrap: every linear layer except the output head.

    Works on a plain model and on one whose linear layers are already 4-bit (bitsandbytes
    subclasses torch.nn.Linear).
    """
    import torch

    heads = set(_output_head_names(model))
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name not in heads and ".lora_" not in name
    ]


def plan_targets(
    requested: str | Iterable[str],
    *,
    architecture: str,
    linear_names: list[str],
    module_names: list[str],
    head_names: list[str] = (),
) -> TargetPlan:
    """The pure decision behind resolve_targets, on lists of module names."""
    if not linear_names:
        raise InvalidArgument(f"{architecture} has no linear layers LoRA could wrap.", field="target_modules")
    expected = tuple(linear_names)
    leaf_names = tuple(sorted({name.rsplit(".", 1)[-1] for name in expected}))
    if isinstance(requested, str):
        if requested == AUTO:
            table = ARCHITECTURE_TARGETS.get(architecture)
            if table is None:
                return TargetPlan(architecture, ALL_LINEAR, leaf_names, expected)
            _require_full_cover(architecture, table, expected, module_names, head_names,
                                what=f"the built-in table for {architecture}")
            return TargetPlan(architecture, "table", tuple(sorted(table)), expected)
        if requested == ALL_LINEAR:
            return TargetPlan(architecture, ALL_LINEAR, leaf_names, expected)
        raise InvalidArgument(
            f"target_modules {requested!r} is not understood: use 'auto', 'all-linear', or a list of "
            f"module names (for {architecture}: {', '.join(leaf_names)}).",
            field="target_modules",
        )
    names = tuple(requested)
    _require_full_cover(architecture, names, expected, module_names, head_names, what="target_modules")
    return TargetPlan(architecture, "list", leaf_names, expected)


def _require_full_cover(
    architecture: str,
    targets: tuple[str, ...],
    expected: tuple[str, ...],
    module_names: list[str],
    head_names: Iterable[str],
    *,
    what: str,
) -> None:
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    config = LoraConfig(target_modules=list(targets))
    matched = [name for name in module_names if check_target_module_exists(config, name)]
    expected_set = set(expected)
    leaf_names = sorted({name.rsplit(".", 1)[-1] for name in expected})
    advice = f"For {architecture} use 'auto', 'all-linear' or {leaf_names}."
    heads = [name for name in matched if name in set(head_names)]
    if heads:
        raise InvalidArgument(
            f"{what} matches the output head ({', '.join(heads)}), which LoRA training here does not adapt. "
            + advice,
            field="target_modules",
        )
    not_linear = [name for name in matched if name not in expected_set]
    if not_linear:
        raise InvalidArgument(
            f"{what} matches modules that are not linear layers: {', '.join(not_linear[:5])}. " + advice,
            field="target_modules",
        )
    if not matched:
        raise InvalidArgument(
            f"{what} {list(targets)} matches no layer of {architecture}. " + advice, field="target_modules"
        )
    missing = [name for name in expected if name not in set(matched)]
    if missing:
        wrapped_leaves = sorted({name.rsplit(".", 1)[-1] for name in matched})
        missing_leaves = sorted({name.rsplit(".", 1)[-1] for name in missing})
        raise InvalidArgument(
            f"{what} {list(targets)} would wrap only {len(matched)} of the {len(expected)} linear layers of "
            f"{architecture} ({', '.join(wrapped_leaves)}), leaving out {', '.join(missing_leaves)}. " + advice,
            field="target_modules",
            extra={"wrapped": len(matched), "linear_layers": len(expected), "missing": missing_leaves},
        )


def assert_wrapped(peft_model: Any, plan: TargetPlan) -> int:
    """Check that peft wrapped exactly the planned layers; return how many it wrapped."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    base = peft_model.get_base_model()
    wrapped = sorted(name for name, module in base.named_modules() if isinstance(module, BaseTunerLayer))
    if wrapped != sorted(plan.module_names):
        extra = sorted(set(wrapped) - set(plan.module_names))
        missing = sorted(set(plan.module_names) - set(wrapped))
        raise LoraTargetMismatch(
            f"peft wrapped {len(wrapped)} layers, the plan expected {plan.expected_count} "
            f"(missing: {missing[:5]}, unexpected: {extra[:5]}).",
        )
    return len(wrapped)


def _output_head_names(model: Any) -> list[str]:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        return []
    return [name for name, module in model.named_modules() if module is head]
