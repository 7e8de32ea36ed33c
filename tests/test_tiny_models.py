"""The tiny models load offline, carry the prompt format we train and serve with, and rebuild identically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.support.models import build_script, ensure_tiny_models

CHAT_MODELS = ["tiny-phi3", "tiny-llama"]
ALL_MODELS = [*CHAT_MODELS, "tiny-llama-plain"]
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another one?"},
    {"role": "assistant", "content": "Dark green, perhaps."},
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_and_tokenizer_load_offline_and_agree(tiny_models, name):
    import torch
    from transformers import AutoModelForCausalLM

    folder = tiny_models / name
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = load_tokenizer(folder)

    assert (folder / "model.safetensors").is_file()
    assert model.dtype == torch.float32
    assert json.loads((folder / "config.json").read_text())["dtype"] == "float32"
    assert model.config.max_position_embeddings >= 512  # vLLM runs with --max-model-len 512
    # vLLM and the trainer index the embedding with every id the tokenizer can produce.
    assert len(tokenizer) == model.config.vocab_size <= 4096
    assert model.config.pad_token_id == tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.eos_token_id in model.generation_config.eos_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id

    batch = tokenizer(["A short test sentence."], return_tensors="pt")
    assert batch.input_ids[0, 0].item() == tokenizer.bos_token_id  # plain text starts with <s>, like Llama
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch.input_ids.shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_architectures(tiny_models):
    archs = {
        name: json.loads((tiny_models / name / "config.json").read_text())["architectures"]
        for name in ALL_MODELS
    }
    assert archs == {
        "tiny-phi3": ["Phi3ForCausalLM"],
        "tiny-llama": ["LlamaForCausalLM"],
        "tiny-llama-plain": ["LlamaForCausalLM"],
    }


def test_byte_level_tokenizer_round_trips_any_text(tiny_models):
    tokenizer = load_tokenizer(tiny_models / "tiny-phi3")
    text = "Grüße, 世界! def f(x):\n\treturn x ** 2  # ✓"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize("name", CHAT_MODELS)
def test_chat_template_renders_phi3_style_turns(tiny_models, name):
    tokenizer = load_tokenizer(tiny_models / name)

    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)

    assert rendered == (
        "<s><|system|>\nAnswer briefly.<|end|>\n<|user|>\nName a colour.<|end|>\n"
        "<|assistant|>\nBlue.<|end|>\n<|user|>\nAnother one?<|end|>\n"
        "<|assistant|>\nDark green, perhaps.<|end|>\n"
    )
    assert prompt == "<s><|system|>\nAnswer briefly.<|end|>\n<|user|>\nName a colour.<|end|>\n<|assistant|>\n"
    # The chat tokenizers stop a turn on <|end|>: it is both the eos token and a single special token.
    assert tokenizer.eos_token == "<|end|>"
    assert (
        tokenizer.convert_tokens_to_ids("<|end|>") in tokenizer(rendered, add_special_tokens=False).input_ids
    )


@pytest.mark.parametrize("name", CHAT_MODELS)
def test_assistant_mask_covers_each_answer_and_its_end_token(tiny_models, name):
    tokenizer = load_tokenizer(tiny_models / name)

    out = tokenizer.apply_chat_template(CONVERSATION, return_assistant_tokens_mask=True, return_dict=True)
    ids, mask = out["input_ids"], out["assistant_masks"]

    spans, current = [], []
    for token_id, masked in zip(ids, mask):
        if masked:
            current.append(token_id)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    assert [tokenizer.decode(span) for span in spans] == ["Blue.<|end|>", "Dark green, perhaps.<|end|>"]


@pytest.mark.parametrize("name", CHAT_MODELS)
def test_trl_agrees_the_template_trains_the_stop_token(tiny_models, name):
    from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

    tokenizer = load_tokenizer(tiny_models / name)
    # With markers present, trl uses our template as is (no swapped-in training template).
    assert has_generation_markers(tokenizer.chat_template)
    assert is_chat_template_stop_token_trained(tokenizer)


def test_plain_model_has_no_chat_template(tiny_models):
    tokenizer = load_tokenizer(tiny_models / "tiny-llama-plain")
    folder = tiny_models / "tiny-llama-plain"

    assert tokenizer.chat_template is None
    assert not (folder / "chat_template.jinja").exists()
    assert "chat_template" not in json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer.eos_token == "</s>"
    with pytest.raises(ValueError):
        tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False)


def test_rebuild_replaces_half_built_folder_with_identical_files(tiny_models, tmp_path):
    target = tmp_path / "models"
    (target / "tiny-phi3").mkdir(parents=True)
    (target / "tiny-phi3" / "model.safetensors").write_bytes(b"truncated")  # as if a build died here

    assert not build_script().is_built(target)
    assert ensure_tiny_models(target) == target

    assert build_script().is_built(target)
    tiny = {name: digest for name, digest in file_digests(tiny_models).items()
            if "smollm2" not in name}  # var/models also holds SmolLM2, which this build leaves alone
    assert file_digests(target) == tiny


def test_a_rebuild_leaves_other_models_in_the_folder_alone(tiny_models, tmp_path):
    target = tmp_path / "models"
    (target / "other").mkdir(parents=True)
    (target / "other" / "config.json").write_text("{}")
    ensure_tiny_models(target)
    assert (target / "other" / "config.json").read_text() == "{}"
    assert not [p for p in target.iterdir() if p.name.startswith(".staging")]


def test_ensure_is_a_no_op_when_built(tiny_models):
    weights = tiny_models / "tiny-phi3" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    ensure_tiny_models(tiny_models)
    assert weights.stat().st_mtime_ns == before


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
