"""Admin forms. Types and ranges only: the rest is RunParams' and the trainer's, so the admin
and the API reject the same things."""

from __future__ import annotations

from typing import Any

from django import forms

from control_plane.datasets.models import Dataset
from control_plane.runs import params as limits


class FineTuneForm(forms.Form):
    datasets = forms.ModelMultipleChoiceField(
        queryset=Dataset.objects.filter(status=Dataset.Status.READY).order_by("name"),
        to_field_name="name",
        widget=forms.CheckboxSelectMultiple,
        help_text="Ready datasets; their rows are trained on together.",
    )
    base_model = forms.CharField(
        max_length=256,
        initial=limits.DEFAULT_BASE_MODEL,
        help_text="Canonical model id, recorded in the adapter; the trainer loads its local copy.",
    )
    epochs = forms.FloatField(
        required=False, min_value=0, max_value=limits.MAX_EPOCHS, help_text="In (0, 100]."
    )
    learning_rate = forms.FloatField(
        required=False,
        min_value=0,
        max_value=limits.MAX_LEARNING_RATE,
        help_text="In (0, 1]; LoRA: 1e-4 to 1e-3.",
    )
    lora_r = forms.IntegerField(required=False, min_value=1, max_value=limits.MAX_RANK, label="LoRA rank")
    lora_alpha = forms.FloatField(required=False, min_value=0, max_value=limits.MAX_ALPHA, label="LoRA alpha")
    lora_dropout = forms.FloatField(required=False, min_value=0, max_value=1, label="LoRA dropout")
    target_modules = forms.CharField(
        required=False,
        max_length=4000,
        help_text="Comma-separated module names, or all-linear; empty: resolved per architecture.",
    )
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=limits.MAX_BATCH_SIZE)
    gradient_accumulation_steps = forms.IntegerField(
        required=False, min_value=1, max_value=limits.MAX_GRAD_ACCUM
    )
    max_length = forms.IntegerField(
        required=False,
        min_value=limits.MIN_MAX_LENGTH,
        max_value=limits.MAX_MAX_LENGTH,
        help_text="Tokens per row.",
    )
    eval_fraction = forms.FloatField(
        required=False,
        min_value=0,
        max_value=limits.MAX_EVAL_FRACTION,
        help_text="Held-out share, in [0, 0.5).",
    )
    adapter_name = forms.CharField(
        required=False,
        max_length=256,
        help_text="Stem of the versioned adapter name; default from the base model.",
    )
    merge_full_model = forms.BooleanField(required=False, label="Also export a merged full model")

    HYPERPARAMETERS = (
        "epochs",
        "learning_rate",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "batch_size",
        "gradient_accumulation_steps",
        "max_length",
        "eval_fraction",
    )

    def params(self) -> dict[str, Any]:
        """RunParams keyword arguments; unset hyperparameters are left to the trainer's defaults."""
        data = self.cleaned_data
        hyperparameters = {
            name: data[name] for name in self.HYPERPARAMETERS if data.get(name) not in (None, "")
        }
        return {
            "datasets": [dataset.name for dataset in data["datasets"]],
            "base_model": data["base_model"].strip(),
            "hyperparameters": hyperparameters,
            "adapter_name": data["adapter_name"].strip(),
            "merge_full_model": data["merge_full_model"],
        }
