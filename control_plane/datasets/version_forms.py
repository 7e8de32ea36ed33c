"""Admin forms for dataset versions: merge, a new version from a file, compare. Types only:
the rules (unknown or unready datasets, names) are versions.py's, as for the API."""

from __future__ import annotations

from django import forms


class MergeForm(forms.Form):
    sources = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='One dataset a line, in order ("name" or "name@N"); the first is the new version\'s parent.',
    )
    name = forms.CharField(required=False, max_length=256, help_text='Default "<family>.v<N>".')
    dedupe = forms.BooleanField(
        required=False, initial=True, help_text="Drop rows identical to an earlier one."
    )

    def clean_sources(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["sources"].splitlines() if line.strip()]


class NewVersionForm(forms.Form):
    file = forms.FileField(help_text="The new version's rows: JSONL in the instruction or chat format.")
    name = forms.CharField(required=False, max_length=256, help_text='Default "<family>.v<N>".')


class CompareForm(forms.Form):
    against = forms.CharField(max_length=300, label="Compare with", help_text='"name" or "name@N".')
