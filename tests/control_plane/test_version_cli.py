"""`synthtune datasets lineage | diff | merge | edit` against a live control plane (real HTTP),
in-process: the same commands and client a user runs, without a process per call."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from rest_framework.authtoken.models import Token

from control_plane.datasets import services
from control_plane.datasets.models import Dataset
from synthtune.cli.main import cli
from tests.control_plane.helpers import CHAT_ROWS, INSTRUCTION_ROWS, jsonl

EXTRA = {"instruction": "Say goodbye.", "output": "Bye!"}


@pytest.fixture
def synthtune(live_server, user, monkeypatch):
    monkeypatch.setenv("SYNTHTUNE_API_URL", live_server.url)
    monkeypatch.setenv("SYNTHTUNE_API_TOKEN", Token.objects.create(user=user).key)
    monkeypatch.setenv("SYNTHTUNE_CONFIG", "/nonexistent/config.json")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return run


@pytest.mark.django_db(transaction=True)
def test_edit_merge_lineage_and_diff_from_the_cli(synthtune, user, tmp_path):
    services.dataset_upload(owner=user, name="faq", data=jsonl(INSTRUCTION_ROWS))
    services.dataset_upload(owner=user, name="chat", data=jsonl(CHAT_ROWS))
    rows = tmp_path / "edited.jsonl"
    rows.write_bytes(jsonl([*INSTRUCTION_ROWS[:2], EXTRA]))

    edited = synthtune("datasets", "edit", "faq", str(rows))
    assert edited.exit_code == 0, edited.output
    assert "new version faq.v2 (v2 of faq, parent faq): 3 rows" in edited.output
    merged = synthtune("--json", "datasets", "merge", "faq@2", "chat", "--name", "all")
    assert merged.exit_code == 0, merged.output
    assert (json.loads(merged.output)["parent"], json.loads(merged.output)["rows"]) == ("faq.v2", 5)

    lineage = synthtune("datasets", "lineage", "faq.v2")
    assert lineage.exit_code == 0, lineage.output
    assert "  faq (v1, upload)" in lineage.output and "* faq.v2 (v2, edit: rows=3" in lineage.output
    assert "└ all (v3, merge: dedupe=True)" in lineage.output

    diff = synthtune("datasets", "diff", "faq", "faq.v2")
    assert diff.exit_code == 0, diff.output
    assert "1 added, 1 removed, 0 changed, 2 unchanged" in diff.output
    assert "+ 'Say goodbye.' → 'Bye!'" in diff.output and "- 'Name a colour.' → 'Blue.'" in diff.output

    # User errors are exit code 2 with the field named.
    unknown = synthtune("datasets", "edit", "faq@9", str(rows))
    assert unknown.exit_code == 2 and "no version 9" in unknown.output and "field: parent" in unknown.output
    assert synthtune("datasets", "merge", "faq").exit_code == 2
    assert Dataset.objects.count() == 4
