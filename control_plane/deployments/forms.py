"""Admin forms for the Compare page. Types and ranges only; the services and the proxy judge
the rest, so the admin and the API reject the same things."""

from __future__ import annotations

from typing import Any

from django import forms

from control_plane.core.validators import top_p_above_zero
from control_plane.datasets.models import Dataset
from control_plane.runs.models import Adapter


def _sampling(data: dict[str, Any]) -> dict[str, Any]:
    return {
        name: data[name]
        for name in ("temperature", "top_p", "max_tokens", "seed")
        if data.get(name) not in (None, "")
    }


class _ServingForm(forms.Form):
    adapter = forms.ModelChoiceField(
        queryset=Adapter.objects.order_by("-created_at"),
        to_field_name="name",
        help_text="Compared with its base model. Load it first (Adapters: Load into vLLM).",
    )
    temperature = forms.FloatField(required=False, min_value=0, max_value=2, help_text="Default 0 (greedy).")
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=4096)
    target = forms.CharField(
        required=False,
        max_length=512,
        help_text="vLLM base URL; empty: where the adapter is loaded, else the proxy's default.",
    )
    token = forms.CharField(
        required=False,
        max_length=4096,
        widget=forms.PasswordInput,
        help_text="vLLM's API key, if it has one: passed on, never stored.",
    )

    def serving(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "adapter_name": data["adapter"].name,
            "sampling": _sampling(data),
            "target": data["target"].strip(),
            "token": data["token"],
        }


class CompareForm(_ServingForm):
    prompt = forms.CharField(
        max_length=16_000, widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), strip=False
    )
    system_prompt = forms.CharField(
        required=False, max_length=16_000, widget=forms.Textarea(attrs={"rows": 2, "cols": 80}), strip=False
    )
    top_p = forms.FloatField(required=False, min_value=0, max_value=1, validators=[top_p_above_zero])
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)

    field_order = ("adapter", "prompt", "system_prompt", "temperature", "top_p", "max_tokens", "seed")

    def params(self) -> dict[str, Any]:
        return {
            **self.serving(),
            "prompt": self.cleaned_data["prompt"],
            "system_prompt": self.cleaned_data["system_prompt"],
        }


class BatchCompareForm(_ServingForm):
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.filter(status=Dataset.Status.READY).order_by("name"),
        to_field_name="name",
        required=False,
        empty_label="(the adapter's held-out rows)",
        help_text="Rows with reference answers; default: the adapter's eval split.",
    )
    limit = forms.IntegerField(min_value=1, max_value=200, initial=20, help_text="At most 200 rows.")
    judge_url = forms.CharField(
        required=False,
        max_length=2048,
        label="Judge URL",
        help_text="Optional LLM judge (OpenAI-compatible, e.g. http://host:8000/v1): which answer is better, "
        "asked in both orders.",
    )
    judge_model = forms.CharField(required=False, max_length=256, label="Judge model")
    judge_token = forms.CharField(
        required=False,
        max_length=8192,
        widget=forms.PasswordInput,
        label="Judge token",
        help_text="The judge's API key: passed on, never stored.",
    )
    judge_mode = forms.ChoiceField(
        choices=[
            ("pairwise", "pairwise: which is better"),
            ("single", "single: a 1-5 score per side"),
            ("both", "both"),
        ],
        initial="pairwise",
        required=False,
        label="Judge mode",
    )
    judge_rubric = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
        label="Judge rubric",
        help_text="What 'better' means; default: helpful, correct, following the instruction.",
    )

    field_order = ("adapter", "dataset", "limit", "temperature", "max_tokens")

    # The API's judge fields (in the proxy's errors) as this form names them.
    JUDGE_FIELDS = {
        "judge.base_url": "judge_url",
        "judge.model": "judge_model",
        "judge.token": "judge_token",
        "judge.mode": "judge_mode",
        "judge.rubric": "judge_rubric",
    }

    def clean(self):
        data = super().clean()
        if data.get("judge_url") and not data.get("judge_model"):
            self.add_error("judge_model", "Name the judge's model.")
        if data.get("judge_model") and not data.get("judge_url"):
            self.add_error("judge_url", "Give the judge's URL.")
        return data

    def judge(self) -> dict[str, Any] | None:
        data = self.cleaned_data
        if not data["judge_url"].strip():
            return None
        return {
            "base_url": data["judge_url"].strip(),
            "model": data["judge_model"].strip(),
            "token": data["judge_token"],
            "mode": data["judge_mode"] or "pairwise",
            "rubric": data["judge_rubric"],
        }

    def params(self) -> dict[str, Any]:
        dataset = self.cleaned_data["dataset"]
        return {
            **self.serving(),
            "dataset": dataset.name if dataset else "",
            "limit": self.cleaned_data["limit"],
            "judge": self.judge(),
        }
