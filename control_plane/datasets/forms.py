"""Admin forms. Types and ranges only: the cross-field rules are GenerationParams' (and
CurateParams' and Filters'), the rest the services', so the admin and the API reject the same
things. Errors name API fields ("filters.judge.base_url"); API_FIELDS maps them to form fields."""

from __future__ import annotations

from typing import Any

from django import forms

from control_plane.core.validators import top_p_above_zero
from control_plane.datasets import generation as limits
from control_plane.datasets.models import Dataset


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


class FiltersForm(forms.Form):
    """The quality filters, shared by the Generate and Curate forms. Exact duplicates are always
    dropped by the service; each filter here is off unless asked for."""

    near_dup = forms.BooleanField(required=False, label="Drop near duplicates")
    near_dup_threshold = forms.FloatField(
        required=False,
        min_value=limits.NEAR_DUP_ABOVE,
        max_value=1,
        label="Near-duplicate threshold",
        help_text="Instruction similarity from which rows are near duplicates, in (0.5, 1]; blank: 0.8.",
    )
    decontam_datasets = forms.MultipleChoiceField(
        required=False,
        label="Decontaminate against datasets",
        widget=forms.SelectMultiple(attrs={"size": 5}),
        help_text="Ready datasets (evaluation sets) whose rows must not leak into this one.",
    )
    decontam_adapters = forms.MultipleChoiceField(
        required=False,
        label="…and adapters' eval splits",
        widget=forms.SelectMultiple(attrs={"size": 3}),
        help_text="Adapters whose held-out eval split must not leak into this one.",
    )
    decontam_ngram = forms.IntegerField(
        required=False,
        min_value=limits.MIN_NGRAM,
        max_value=limits.MAX_NGRAM,
        label="Decontamination n-gram",
        help_text="Word n-gram length, 3 to 50; blank: 8.",
    )
    decontam_threshold = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        label="Decontamination threshold",
        help_text="Share of shared n-grams from which a row is dropped, in (0, 1]; blank: 0.5.",
    )
    judge_base_url = forms.CharField(
        required=False,
        max_length=2048,
        label="Judge base URL",
        help_text="An OpenAI-compatible endpoint that scores every row; blank: no judge.",
    )
    judge_model = forms.CharField(required=False, max_length=256, label="Judge model")
    # Never stored and never sent back to the browser (render_value=False).
    judge_token = forms.CharField(
        required=False,
        max_length=8192,
        label="Judge token",
        widget=forms.PasswordInput(render_value=False),
        help_text="Bearer token for the judge; used for this job only, never stored.",
    )
    judge_min_score = forms.FloatField(
        required=False,
        min_value=limits.MIN_SCORE,
        max_value=limits.MAX_SCORE,
        label="Judge minimum score",
        help_text="Rows whose mean score (1 to 5) is below this are dropped; blank: 3.",
    )
    judge_concurrency = forms.IntegerField(
        required=False, min_value=1, max_value=limits.MAX_CONCURRENCY, label="Judge concurrency"
    )
    judge_rubric = forms.CharField(
        required=False,
        label="Judge rubric",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One criterion a line, as name: description; blank: helpfulness, correctness, "
        "instruction_following.",
    )

    FILTER_FIELDSETS = (
        ("Near duplicates", "", ("near_dup", "near_dup_threshold")),
        (
            "Decontamination",
            "Drop rows that share word n-grams with an evaluation set.",
            ("decontam_datasets", "decontam_adapters", "decontam_ngram", "decontam_threshold"),
        ),
        (
            "LLM judge",
            "Score every row 1 to 5 per criterion; drop rows below the minimum.",
            (
                "judge_base_url",
                "judge_model",
                "judge_token",
                "judge_min_score",
                "judge_concurrency",
                "judge_rubric",
            ),
        ),
    )
    FIELDSETS: tuple = ()
    # API field names (in errors from the params and the service) -> this form's fields.
    API_FIELDS = {
        "filters.near_dup.enabled": "near_dup",
        "filters.near_dup.threshold": "near_dup_threshold",
        "filters.decontam": "decontam_datasets",
        "filters.decontam.eval_datasets": "decontam_datasets",
        "filters.decontam.eval_adapters": "decontam_adapters",
        "filters.decontam.ngram": "decontam_ngram",
        "filters.decontam.threshold": "decontam_threshold",
        "filters.judge.base_url": "judge_base_url",
        "filters.judge.model": "judge_model",
        "filters.judge.token": "judge_token",
        "filters.judge.min_score": "judge_min_score",
        "filters.judge.concurrency": "judge_concurrency",
        "filters.judge.rubric": "judge_rubric",
        "evol_instruct": "evol_rounds",
        "evol_instruct.rounds": "evol_rounds",
        "evol_instruct.breadth_share": "breadth_share",
        "topic_tree": "tree_depth",
        "topic_tree.depth": "tree_depth",
        "topic_tree.breadth": "tree_breadth",
    }

    def __init__(self, *args, **kwargs):
        from control_plane.runs.models import Adapter

        super().__init__(*args, **kwargs)
        ready = Dataset.objects.filter(status=Dataset.Status.READY).order_by("name")
        self.fields["decontam_datasets"].choices = [
            (name, name) for name in ready.values_list("name", flat=True)
        ]
        # Only adapters whose run held out an eval split (manifest eval_split is null otherwise).
        adapters = Adapter.objects.order_by("name").only("name", "manifest")
        adapters = [adapter.name for adapter in adapters if (adapter.manifest or {}).get("eval_split")]
        self.fields["decontam_adapters"].choices = [(name, name) for name in adapters]

    def form_field(self, api_field: str) -> str | None:
        """The form field an API field name (from an error) is shown on, if any."""
        name = self.API_FIELDS.get(api_field, api_field)
        if name not in self.fields and api_field.startswith("filters.judge.rubric["):
            name = "judge_rubric"
        return name if name in self.fields else None

    def fieldset_groups(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        """(title, description, bound fields) for the form page: the form's own, then the filters."""
        groups = (*self.FIELDSETS, *self.FILTER_FIELDSETS)
        return [(title, text, [self[name] for name in names]) for title, text, names in groups]

    def clean_judge_rubric(self) -> list[dict[str, str]]:
        rubric = []
        for line in _lines(self.cleaned_data["judge_rubric"]):
            name, _, description = line.partition(":")
            rubric.append({"name": name.strip(), "description": description.strip()})
        return rubric

    def filters_and_judge_token(self) -> tuple[dict[str, Any], str]:
        """The filters as the API takes them (blank ones off) and the judge's token."""
        data = self.cleaned_data
        filters: dict[str, Any] = {}
        if data["near_dup"]:
            filters["near_dup"] = {"threshold": data["near_dup_threshold"]}
        if data["decontam_datasets"] or data["decontam_adapters"]:
            filters["decontam"] = {
                "eval_datasets": data["decontam_datasets"],
                "eval_adapters": data["decontam_adapters"],
                "ngram": data["decontam_ngram"],
                "threshold": data["decontam_threshold"],
            }
        judged = ("judge_model", "judge_min_score", "judge_concurrency", "judge_rubric", "judge_token")
        if data["judge_base_url"].strip() or any(data[name] for name in judged):
            filters["judge"] = {
                "base_url": data["judge_base_url"].strip(),
                "model": data["judge_model"].strip(),
                "min_score": data["judge_min_score"],
                "concurrency": data["judge_concurrency"],
                "rubric": data["judge_rubric"],
            }
        unset = {name: {k: v for k, v in part.items() if v is not None} for name, part in filters.items()}
        return unset, data["judge_token"]


class GenerateForm(FiltersForm):
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
            ("evol_instruct", "evol_instruct: instructions evolved from seeds or a topic, then answers"),
            ("topic_tree", "topic_tree: a topic expanded into subtopics, instructions per leaf"),
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
    topic = forms.CharField(
        required=False, max_length=limits.MAX_TEXT, help_text="self_instruct, evol_instruct, topic_tree"
    )
    seed_examples = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="self_instruct, evol_instruct: one example a line.",
    )
    evol_rounds = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=limits.MAX_EVOL_ROUNDS,
        label="Evolution rounds",
        help_text="evol_instruct: evolutions per instruction, 1 to 5; blank: 2.",
    )
    breadth_share = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        label="Breadth share",
        help_text="evol_instruct: share of evolutions in breadth (new instructions) rather than depth; "
        "blank: 0.25.",
    )
    tree_depth = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=limits.MAX_TREE_DEPTH,
        label="Tree depth",
        help_text="topic_tree: levels of subtopics, 1 to 4; blank: 2.",
    )
    tree_breadth = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=limits.MAX_TREE_BREADTH,
        label="Tree breadth",
        help_text="topic_tree: subtopics per node, 1 to 10; blank: 3.",
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
    top_p = forms.FloatField(required=False, min_value=0, max_value=1, validators=[top_p_above_zero])
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

    FIELDSETS = (
        ("", "", ("name", "base_url", "model", "token", "mode", "num_rows")),
        (
            "What to generate",
            "Only the fields of the chosen mode are used.",
            ("topic", "seed_examples", "instructions", "prompt_template", "system_prompt"),
        ),
        (
            "Strategy",
            "Blank: the datagen service's default.",
            ("evol_rounds", "breadth_share", "tree_depth", "tree_breadth"),
        ),
        (
            "Sampling and limits",
            "Blank: the endpoint's or the service's default.",
            (
                "temperature",
                "top_p",
                "max_tokens",
                "concurrency",
                "requests_per_minute",
                "request_timeout_s",
                "max_retries",
                "skip_tls_verify",
            ),
        ),
    )
    _STRATEGY = {
        "evol_instruct": {"evol_rounds": "rounds", "breadth_share": "breadth_share"},
        "topic_tree": {"tree_depth": "depth", "tree_breadth": "breadth"},
    }

    def params_and_tokens(self) -> tuple[dict, str, str]:
        """GenerationParams keyword arguments (unset optionals dropped), the teacher's token and
        the judge's."""
        filter_fields = {name for _, _, names in self.FILTER_FIELDSETS for name in names}
        strategy_fields = {name for fields in self._STRATEGY.values() for name in fields}
        data = {
            key: value
            for key, value in self.cleaned_data.items()
            if value is not None and key not in filter_fields | strategy_fields
        }
        for setting, fields in self._STRATEGY.items():
            values = {
                key: self.cleaned_data[name]
                for name, key in fields.items()
                if self.cleaned_data[name] is not None
            }
            if values:  # GenerationParams refuses them for another mode, naming the field
                data[setting] = values
        data["filters"], judge_token = self.filters_and_judge_token()
        return data, data.pop("token", ""), judge_token


class CurateForm(FiltersForm):
    """Filter a dataset into a new version of it: the admin's side of POST .../curate/."""

    name = forms.CharField(
        required=False, max_length=256, help_text="The new dataset; blank: the next version's name."
    )
    num_rows = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=limits.MAX_ROWS,
        help_text="Curate only the first rows; blank: every row. Exact duplicates and empty outputs "
        "are always dropped.",
    )

    FIELDSETS = (("", "", ("name", "num_rows")),)

    def params_and_judge_token(self) -> tuple[dict, str]:
        """CurateParams keyword arguments and the judge's token."""
        filters, judge_token = self.filters_and_judge_token()
        data = {"name": self.cleaned_data["name"].strip(), "num_rows": self.cleaned_data["num_rows"]}
        return {**data, "filters": filters}, judge_token


class UploadForm(forms.Form):
    file = forms.FileField(help_text='JSONL: {"instruction", "output"} rows or {"messages": [...]} rows.')
    name = forms.CharField(
        required=False, max_length=256, help_text="Defaults to the file name without .jsonl."
    )
