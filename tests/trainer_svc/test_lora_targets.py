"""LoRA targets: resolved per architecture from the meta-device model, and asserted after wrapping."""

from __future__ import annotations

import pytest

from synthtune.errors import InvalidArgument
from trainer_svc.lora_targets import LoraTargetMismatch, assert_wrapped, plan_targets, resolve_targets

LLAMA_NAMES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PHI3_NAMES = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


@pytest.fixture(scope="module")
def phi3(tiny_models):
    return tiny_models / "tiny-phi3"


@pytest.fixture(scope="module")
def llama(tiny_models):
    return tiny_models / "tiny-llama"


def test_auto_uses_the_phi3_table_and_covers_every_linear_layer(phi3):
    plan = resolve_targets("auto", phi3)
    assert plan.architecture == "Phi3ForCausalLM" and plan.source == "table"
    assert plan.target_modules == tuple(sorted(PHI3_NAMES))
    assert plan.expected_count == 8  # 2 layers x 4 linear layers; lm_head excluded
    assert "lm_head" not in plan.module_names


def test_auto_uses_the_llama_table(llama):
    plan = resolve_targets("auto", llama)
    assert plan.architecture == "LlamaForCausalLM"
    assert plan.target_modules == tuple(sorted(LLAMA_NAMES))
    assert plan.expected_count == 14


def test_all_linear_and_explicit_lists_wrap_the_same_layers(phi3):
    auto = resolve_targets("auto", phi3)
    assert resolve_targets("all-linear", phi3).module_names == auto.module_names
    explicit = resolve_targets(PHI3_NAMES, phi3)
    assert explicit.source == "list" and explicit.module_names == auto.module_names
    # Full dotted names work too, as long as every linear layer is named.
    assert resolve_targets(list(auto.module_names), phi3).target_modules == auto.target_modules


def test_llama_names_on_phi3_fail_naming_what_is_left_out(phi3):
    with pytest.raises(InvalidArgument) as caught:
        resolve_targets(LLAMA_NAMES, phi3)
    error = caught.value
    assert error.field == "target_modules"
    assert "only 4 of the 8 linear layers of Phi3ForCausalLM (down_proj, o_proj)" in error.message
    assert "leaving out gate_up_proj, qkv_proj" in error.message
    assert "'auto', 'all-linear'" in error.message  # what to do instead
    assert error.extra["missing"] == ["gate_up_proj", "qkv_proj"]


def test_a_partial_list_on_llama_fails(llama):
    with pytest.raises(InvalidArgument, match=r"only 4 of the 14 .* leaving out down_proj, gate_proj, k_proj, o_proj, up_proj"):
        resolve_targets(["q_proj", "v_proj"], llama)


def test_names_matching_nothing_fail(phi3):
    with pytest.raises(InvalidArgument, match=r"\['c_attn', 'c_proj'\] matches no layer of Phi3ForCausalLM"):
        resolve_targets(["c_attn", "c_proj"], phi3)


def test_the_output_head_is_refused(phi3):
    with pytest.raises(InvalidArgument, match="output head"):
        resolve_targets([*PHI3_NAMES, "lm_head"], phi3)


def test_non_linear_modules_are_refused(phi3):
    with pytest.raises(InvalidArgument, match="not linear layers: model.layers.0.self_attn"):
        resolve_targets(["self_attn", "mlp"], phi3)


def test_a_string_other_than_auto_or_all_linear_is_refused(phi3):
    with pytest.raises(InvalidArgument, match="not understood"):
        resolve_targets(".*proj", phi3)


def test_unknown_architecture_falls_back_to_every_linear_layer():
    linear = ["model.layers.0.attn.c_attn", "model.layers.0.mlp.fc"]
    plan = plan_targets("auto", architecture="NewForCausalLM", linear_names=linear,
                        module_names=["model", "model.layers.0.attn", *linear])
    assert plan.source == "all-linear" and plan.target_modules == ("c_attn", "fc")


def _load(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir)


def test_assert_wrapped_counts_what_peft_really_wrapped(phi3):
    from peft import LoraConfig, get_peft_model

    plan = resolve_targets("auto", phi3)
    model = get_peft_model(_load(phi3), LoraConfig(r=4, target_modules=list(plan.target_modules)))
    assert assert_wrapped(model, plan) == 8


def test_peft_silently_wraps_part_of_phi3_and_the_assertion_catches_it(phi3):
    from peft import LoraConfig, get_peft_model

    plan = resolve_targets("auto", phi3)
    # The failure DESIGN.md describes: peft accepts Llama's names and wraps o_proj and down_proj only.
    model = get_peft_model(_load(phi3), LoraConfig(r=4, target_modules=LLAMA_NAMES))
    with pytest.raises(LoraTargetMismatch, match=r"wrapped 4 layers, the plan expected 8"):
        assert_wrapped(model, plan)


def test_the_real_phi3_mini_layout_from_its_config_alone(phi3_mini_config_dir):
    plan = resolve_targets("auto", phi3_mini_config_dir)  # meta device: no weights, no memory
    assert plan.expected_count == 128  # 32 layers x (qkv_proj, o_proj, gate_up_proj, down_proj)
    with pytest.raises(InvalidArgument, match=r"only 64 of the 128 linear layers .* leaving out gate_up_proj, qkv_proj"):
        resolve_targets(LLAMA_NAMES, phi3_mini_config_dir)
