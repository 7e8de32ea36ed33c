"""Training templates we ship for chat templates trl does not know (trainer_svc.training_templates)."""

from __future__ import annotations

import pytest

from synthtune.errors import InvalidArgument
from trainer_svc import training_templates
from trainer_svc.dataset_prep import load_tokenizer, training_chat_template
from trainer_svc.training_templates import TEMPLATES_DIR, known_training_template, renders_like


@pytest.fixture
def tokenizer(tiny_models):
    return load_tokenizer(tiny_models / "tiny-phi3")


def test_every_shipped_training_template_has_markers_and_renders_like_its_original(tokenizer):
    for name in training_templates.KNOWN:
        original = (TEMPLATES_DIR / f"{name}.jinja").read_text()
        tokenizer.chat_template = original
        marked = known_training_template(original)
        assert marked and "{% generation %}" in marked and "{% generation %}" not in original
        assert renders_like(tokenizer, marked), name


def test_a_template_that_is_not_exactly_ours_is_not_matched(tokenizer):
    original = (TEMPLATES_DIR / "smollm2.jinja").read_text()
    tokenizer.chat_template = original.replace("helpful", "useful")
    assert known_training_template(tokenizer.chat_template) is None
    with pytest.raises(InvalidArgument, match="neither synthtune nor trl") as caught:
        training_chat_template(tokenizer)  # and trl does not know it either
    assert caught.value.field == "base_model_id"


def test_a_training_template_that_drifted_from_the_original_is_refused(tokenizer, monkeypatch):
    original = (TEMPLATES_DIR / "smollm2.jinja").read_text()
    drifted = known_training_template(original).replace("<|im_start|>assistant\n'", "<|im_start|>assistant:\n'")
    monkeypatch.setattr(training_templates, "_table", lambda: {original.strip(): drifted})
    tokenizer.chat_template = original
    assert not renders_like(tokenizer, drifted)
    with pytest.raises(InvalidArgument, match="renders differently"):
        training_chat_template(tokenizer)
