"""Admin forms. Types and ranges only: the cross-field rules are GenerationParams', the
rest the services', so the admin and the API reject the same things."""

from __future__ import annotations

from django import forms

from control_plane.datasets import generation as limits


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


class GenerateForm(forms.Form):
    name = forms.CharField(max_length=256, help_text="Letters, digits, '.', '-' and '_'.")
    base_url = forms.CharField(
        max_length=2048,
        label="Endpoint base URL",
        help_text="OpenAI-compatible, e.g. http://127.0.0.1:8000/v1",
    )
    model = forms.CharField(max_length=256)
    # Never stored and never sent back to the browser (render_value=False).
    token = forms.CharField(
        required=False,
        max_length=8192,
        widget=forms.PasswordInput(render_value=False),
        help_text="Bearer token for the endpoint; used for this job only, never stored.",
    )
    mode = forms.ChoiceField(
        choices=[
            ("self_instruct", "self_instruct: diverse instructions on a topic, then answers"),
            ("from_instructions", "from_instructions: answers to your instructions"),
            ("fixed", "fixed: every row uses the prompt template (the old app)"),
        ]
    )
    num_rows = forms.IntegerField(
        min_value=1,
        max_value=limits.MAX_ROWS,
        required=False,
        help_text="Defaults to the number of instructions in from_instructions mode.",
    )
    topic = forms.CharField(required=False, max_length=limits.MAX_TEXT, help_text="self_instruct")
    seed_examples = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="self_instruct: one example a line.",
    )
    instructions = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text="from_instructions: one a line."
    )
    prompt_template = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=limits.MAX_TEXT,
        help_text="fixed",
    )
    system_prompt = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=limits.MAX_TEXT
    )
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    top_p = forms.FloatField(required=False, min_value=0, max_value=1)
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=limits.MAX_TOKENS)
    concurrency = forms.IntegerField(required=False, min_value=1, max_value=limits.MAX_CONCURRENCY)
    requests_per_minute = forms.FloatField(required=False, min_value=0, max_value=1_000_000)
    request_timeout_s = forms.FloatField(
        required=False, min_value=0.1, max_value=limits.MAX_REQUEST_TIMEOUT_S, label="Request timeout (s)"
    )
    max_retries = forms.IntegerField(required=False, min_value=0, max_value=limits.MAX_RETRIES)
    skip_tls_verify = forms.BooleanField(required=False, label="Skip TLS verification")

    def clean_seed_examples(self) -> list[str]:
        return _lines(self.cleaned_data["seed_examples"])

    def clean_instructions(self) -> list[str]:
        return _lines(self.cleaned_data["instructions"])

    def params_and_token(self) -> tuple[dict, str]:
        """GenerationParams keyword arguments (unset optionals dropped) and the token."""
        data = {key: value for key, value in self.cleaned_data.items() if value is not None}
        return data, data.pop("token", "")


class UploadForm(forms.Form):
    file = forms.FileField(help_text='JSONL: {"instruction", "output"} rows or {"messages": [...]} rows.')
    name = forms.CharField(
        required=False, max_length=256, help_text="Defaults to the file name without .jsonl."
    )
