"""Admin forms. Types and ranges only: the rest is RunParams' and the trainer's, so the admin
and the API reject the same things."""

from __future__ import annotations

from typing import Any

from django import forms

from control_plane.core.widgets import DatalistInput
from control_plane.datasets.models import Dataset
from control_plane.runs import params as limits


class FineTuneForm(forms.Form):
    """The admin's Start fine-tune form. Fields come in the order a user fills them: what to
    train on, the model, the adapter's name, the main hyperparameters, then the rest."""

    datasets = forms.ModelMultipleChoiceField(
        queryset=Dataset.objects.filter(status=Dataset.Status.READY).order_by("name"),
        to_field_name="name",
        widget=forms.CheckboxSelectMultiple,
        help_text="Ready datasets; their rows are trained on together.",
    )
    eval_datasets = forms.ModelMultipleChoiceField(
        queryset=Dataset.objects.filter(status=Dataset.Status.READY).order_by("name"),
        to_field_name="name",
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Eval datasets",
        help_text="Ready datasets to evaluate on instead of a held-out share (eval fraction is then not "
        "used); none of the training datasets. Blank: the eval fraction is held out.",
    )
    base_model = forms.CharField(
        max_length=256,
        initial=limits.DEFAULT_BASE_MODEL,
        widget=DatalistInput(attrs={"size": 40, "autocomplete": "off"}),
        help_text="A model the trainer has: a folder name in its models root (e.g. tiny-phi3) or a "
        "Hugging Face id in its cache. It is recorded in the adapter.",
    )
    adapter_name = forms.CharField(
        required=False,
        max_length=256,
        help_text="Stem of the versioned adapter name (<stem>-v<N>); blank: from the base model.",
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
    max_length = forms.IntegerField(
        required=False,
        min_value=limits.MIN_MAX_LENGTH,
        max_value=limits.MAX_MAX_LENGTH,
        help_text="Tokens per row; longer rows are truncated (the run reports how many).",
    )
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=limits.MAX_BATCH_SIZE)
    lora_r = forms.IntegerField(required=False, min_value=1, max_value=limits.MAX_RANK, label="LoRA rank")
    lora_alpha = forms.FloatField(required=False, min_value=0, max_value=limits.MAX_ALPHA, label="LoRA alpha")
    lora_dropout = forms.FloatField(required=False, min_value=0, max_value=1, label="LoRA dropout")
    target_modules = forms.CharField(
        required=False,
        max_length=4000,
        help_text="Comma-separated module names, or all-linear; empty: resolved per architecture.",
    )
    gradient_accumulation_steps = forms.IntegerField(
        required=False, min_value=1, max_value=limits.MAX_GRAD_ACCUM
    )
    eval_fraction = forms.FloatField(
        required=False,
        min_value=0,
        max_value=limits.MAX_EVAL_FRACTION,
        help_text="Held-out share, in [0, 0.5); not used with eval datasets.",
    )
    processes_per_node = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=limits.MAX_PROCESSES_PER_NODE,
        help_text="Training processes (data parallel); blank: one per GPU, else 1. More than one needs "
        "the trainer's torchrun launcher.",
    )
    keep_checkpoints = forms.BooleanField(
        required=False, label="Keep checkpoints", help_text="Default: deleted once the run has succeeded."
    )
    eval_steps = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=limits.MAX_EVAL_STEPS,
        help_text="Evaluate every N steps; blank or 0: at every epoch's end.",
    )
    eval_generate_rows = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=limits.MAX_EVAL_GENERATE_ROWS,
        label="Generation eval rows",
        help_text="Held-out rows answered at each eval, for exact match and chrF; blank: none.",
    )
    best_metric = forms.ChoiceField(
        required=False,
        choices=[("", "eval_loss (default)"), *((m, m) for m in limits.BEST_METRICS[1:])],
        help_text="Picks the exported (best) checkpoint and drives early stopping.",
    )
    early_stopping_patience = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=limits.MAX_PATIENCE,
        help_text="Stop after N evals without improvement; blank: never.",
    )
    report_to = forms.ChoiceField(
        required=False,
        choices=[("", "none (default)"), ("mlflow", "mlflow"), ("tensorboard", "tensorboard")],
        help_text="Experiment tracking through transformers' integrations.",
    )
    merge_full_model = forms.BooleanField(required=False, label="Also export a merged full model")

    MAIN_HYPERPARAMETERS = ("epochs", "learning_rate", "max_length", "batch_size")
    HYPERPARAMETERS = (
        *MAIN_HYPERPARAMETERS,
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "gradient_accumulation_steps",
        "eval_fraction",
        "processes_per_node",
        "keep_checkpoints",
    )
    EVAL_HYPERPARAMETERS = (
        "eval_steps",
        "eval_generate_rows",
        "best_metric",
        "early_stopping_patience",
        "report_to",
    )
    FIELDSETS = (
        ("", "", ("datasets", "base_model", "adapter_name")),
        ("Training", "Blank: the trainer's default for the device.", MAIN_HYPERPARAMETERS),
        ("Advanced", "Blank: the trainer's default.", (*HYPERPARAMETERS[4:], "merge_full_model")),
        (
            "Evals and tracking",
            "The best checkpoint is exported. Blank: the trainer's default.",
            ("eval_datasets", *EVAL_HYPERPARAMETERS),
        ),
    )

    def __init__(self, *args, base_models: list[tuple[str, str]] | None = None, **kwargs):
        """`base_models`: (name, why) suggestions for the base model, best first; the first
        one is the initial value."""
        super().__init__(*args, **kwargs)
        if base_models:
            field = self.fields["base_model"]
            field.widget.options = list(base_models)
            field.initial = base_models[0][0]
            suggested = ", ".join(f"{name} ({why})" for name, why in base_models)
            field.help_text = f"{field.help_text} Suggested: {suggested}."

    def fieldset_groups(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        """(title, description, bound fields) for the form page, in FIELDSETS order."""
        return [(title, text, [self[name] for name in names]) for title, text, names in self.FIELDSETS]

    def params(self) -> dict[str, Any]:
        """RunParams keyword arguments; unset hyperparameters are left to the trainer's defaults."""
        data = self.cleaned_data
        hyperparameters = {  # blank, or an unticked box (`is False`: 0 is a value), is the default
            name: data[name]
            for name in (*self.HYPERPARAMETERS, *self.EVAL_HYPERPARAMETERS)
            if data.get(name) not in (None, "") and data.get(name) is not False
        }
        return {
            "datasets": [dataset.name for dataset in data["datasets"]],
            "base_model": data["base_model"].strip(),
            "hyperparameters": hyperparameters,
            "adapter_name": data["adapter_name"].strip(),
            "merge_full_model": data["merge_full_model"],
            "eval_datasets": [dataset.name for dataset in data.get("eval_datasets") or ()],
        }
