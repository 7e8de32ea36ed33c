"""Dataset versions: merge, edit, lineage, diff, row metadata; nothing overwritten."""

from __future__ import annotations

import hashlib
import json

import pytest

from control_plane.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from control_plane.datasets import services, storage, versions
from control_plane.datasets.models import Dataset
from synthtune.paths import validate_name
from tests.control_plane.factories import DatasetFactory
from tests.control_plane.helpers import CHAT_ROWS, INSTRUCTION_ROWS, jsonl

pytestmark = pytest.mark.django_db

EXTRA = [{"instruction": "Say goodbye.", "output": "Bye!"}]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows_of(dataset: Dataset) -> list[dict]:
    return list(storage.iter_rows(storage.absolute(dataset.path)))


def with_sidecar(dataset: Dataset, metadata: list[dict | None]) -> None:
    path = storage.absolute(storage.metadata_relpath(dataset.path))
    path.write_text("".join(json.dumps(m) + "\n" for m in metadata))


@pytest.fixture
def support(user):
    return services.dataset_upload(owner=user, name="support", data=jsonl(INSTRUCTION_ROWS))


def test_roots_are_version_one_of_their_own_family(support):
    generated = DatasetFactory(name="gen")
    assert (support.family, support.version, support.parent, support.operation) == (
        "support",
        1,
        None,
        {"op": "upload", "params": {}},
    )
    assert (generated.family, generated.version, generated.operation["op"]) == ("gen", 1, "generate")


def test_edit_makes_a_child_and_leaves_the_parent_untouched(user, support, data_root):
    parent_sha = sha(data_root / support.path)
    v2 = versions.dataset_edit(
        owner=user, parent=support, name=None, data=jsonl(INSTRUCTION_ROWS[:2] + EXTRA)
    )
    assert (v2.name, v2.family, v2.version, v2.parent, v2.status) == (
        "support.v2",
        "support",
        2,
        support,
        "ready",
    )
    assert v2.operation == {"op": "edit", "params": {"rows": 3, "kept_from_parent": 2}}
    assert rows_of(v2) == INSTRUCTION_ROWS[:2] + EXTRA
    assert v2.sha256 == sha(data_root / v2.path) and v2.size_bytes == (data_root / v2.path).stat().st_size
    # Nothing overwritten: the parent's file and row are as they were.
    assert sha(data_root / support.path) == parent_sha == Dataset.objects.get(name="support").sha256
    # A version of the child continues the family's numbering; an explicit name is kept.
    v3 = versions.dataset_edit(owner=user, parent=v2, name="support-final", data=jsonl(EXTRA))
    assert (v3.name, v3.version, v3.parent, v3.family) == ("support-final", 3, v2, "support")
    # No temp files left behind in datasets/.
    assert sorted(p.name for p in (data_root / "datasets").iterdir()) == [
        "support-final.jsonl",
        "support.jsonl",
        "support.v2.jsonl",
    ]


def test_edit_rejects_bad_bodies_unready_parents_and_taken_names(user, support, data_root):
    with pytest.raises(InvalidArgument) as bad:
        versions.dataset_edit(owner=user, parent=support, name=None, data=b'{"instruction": "x"}\n')
    assert bad.value.extra["field"] == "file" and "line 1" in bad.value.message
    generating = DatasetFactory(name="pending")
    with pytest.raises(InvalidArgument) as unready:
        versions.dataset_edit(owner=user, parent=generating, name=None, data=jsonl(EXTRA))
    assert unready.value.extra["field"] == "parent" and "generating" in unready.value.message
    with pytest.raises(AlreadyExists):
        versions.dataset_edit(owner=user, parent=support, name="support", data=jsonl(EXTRA))
    with pytest.raises(InvalidArgument) as meta:
        versions.dataset_edit(owner=user, parent=support, name="x.meta", data=jsonl(EXTRA))
    assert meta.value.extra["field"] == "name"
    assert Dataset.objects.count() == 2 and len(list((data_root / "datasets").iterdir())) == 1


def test_unknown_parents_and_versions_are_404_naming_the_field(support, user):
    versions.dataset_edit(owner=user, parent=support, name=None, data=jsonl(EXTRA))
    assert versions.dataset_version_get(ref="support@2").name == "support.v2"
    assert versions.dataset_version_get(ref="support.v2", version=1).name == "support"
    with pytest.raises(NotFound) as unknown:
        versions.dataset_version_get(ref="nope")
    assert unknown.value.extra["field"] == "parent" and "datasets list" in unknown.value.message
    with pytest.raises(NotFound) as missing:
        versions.dataset_version_get(ref="support@7")
    assert missing.value.extra["versions"] == [1, 2] and "no version 7" in missing.value.message
    assert missing.value.http_status == 404
    with pytest.raises(InvalidArgument) as malformed:
        versions.dataset_version_get(ref="support@x")
    assert malformed.value.http_status == 400


def test_merge_concatenates_drops_duplicates_and_carries_metadata(user, support, data_root):
    chat = services.dataset_upload(owner=user, name="chat", data=jsonl(CHAT_ROWS + CHAT_ROWS[:1]))
    with_sidecar(support, [{"strategy": "seed", "judge": {"mean": 4.5}}, None, {"strategy": "evol"}])
    merged = versions.dataset_merge(owner=user, name=None, sources=[support, chat])
    assert (merged.name, merged.family, merged.version, merged.parent) == (
        "support.v2",
        "support",
        2,
        support,
    )
    assert merged.format == "mixed" and merged.rows == 5  # chat's repeated row is dropped
    assert rows_of(merged) == INSTRUCTION_ROWS + CHAT_ROWS
    assert merged.operation == {
        "op": "merge",
        "params": {"dedupe": True},
        "inputs": [support.ref, chat.ref],
        "dropped_duplicates": 1,
    }
    assert list(versions.row_metadata(merged)) == [
        {"strategy": "seed", "judge": {"mean": 4.5}},
        None,
        {"strategy": "evol"},
        None,
        None,
    ]
    kept = versions.dataset_merge(owner=user, name="all", sources=[chat, support], dedupe=False)
    assert kept.rows == 6 and kept.family == "chat" and kept.format == "mixed"
    assert versions.dataset_lineage(dataset=kept).inputs[1]["dataset"] == support


def test_merge_refuses_nonsense_and_files_changed_behind_its_back(user, support, data_root):
    other = services.dataset_upload(owner=user, name="other", data=jsonl(EXTRA))
    for sources, words in (([support], "at least two"), ([support, support], "twice")):
        with pytest.raises(InvalidArgument, match=words) as refused:
            versions.dataset_merge(owner=user, name=None, sources=sources)
        assert refused.value.extra["field"] == "sources"
    (data_root / other.path).write_text(json.dumps(EXTRA[0]) + "\n\n")  # same rows, other bytes
    with pytest.raises(FailedPrecondition, match="changed on disk"):
        versions.dataset_merge(owner=user, name=None, sources=[support, other])
    assert Dataset.objects.count() == 2
    assert sorted(p.name for p in (data_root / "datasets").iterdir()) == ["other.jsonl", "support.jsonl"]


def test_diff_counts_added_removed_changed_with_examples(user, support):
    changed = {**INSTRUCTION_ROWS[2], "output": "Red."}
    new_rows = [INSTRUCTION_ROWS[0], changed, *EXTRA]
    new = versions.dataset_edit(owner=user, parent=support, name=None, data=jsonl(new_rows))
    report = versions.dataset_diff(old=support, new=new)
    assert (report.added, report.removed, report.changed, report.unchanged) == (1, 1, 1, 1)
    assert report.examples == {
        "added": EXTRA,
        "removed": [INSTRUCTION_ROWS[1]],
        "changed": [{"old": INSTRUCTION_ROWS[2], "new": changed}],
    }
    assert report.old == {
        "name": "support",
        "version": 1,
        "sha256": support.sha256,
        "family": "support",
        "rows": 3,
    }
    # Chat rows key on their first user message, whitespace and case ignored.
    chat = services.dataset_upload(owner=user, name="chat", data=jsonl(CHAT_ROWS))
    shouty = {"instruction": "  say   HELLO. ", "output": "Hello!"}
    other = services.dataset_upload(owner=user, name="mixed", data=jsonl([shouty]))
    across = versions.dataset_diff(old=chat, new=other, examples=0)
    assert (across.added, across.removed, across.changed, across.examples["changed"]) == (0, 1, 1, [])


def test_lineage_lists_ancestors_root_first_and_children(user, support):
    v2 = versions.dataset_edit(owner=user, parent=support, name=None, data=jsonl(EXTRA))
    v3 = versions.dataset_edit(owner=user, parent=v2, name=None, data=jsonl(EXTRA + INSTRUCTION_ROWS[:1]))
    side = versions.dataset_edit(owner=user, parent=v2, name="side", data=jsonl(INSTRUCTION_ROWS))
    lineage = versions.dataset_lineage(dataset=v2)
    assert (lineage.ancestors, lineage.children) == ([support], [v3, side])
    assert versions.dataset_lineage(dataset=v3).ancestors == [support, v2]


def test_version_child_fields_for_a_curation_job(support):
    fields = versions.version_child_fields(parent=support, op="curate", params={"near_dup": 0.9})
    assert fields == {
        "family": "support",
        "version": 2,
        "parent": support,
        "operation": {"op": "curate", "params": {"near_dup": 0.9}},
    }
    assert versions.version_default_name(parent=support) == "support.v2"
    child = Dataset.objects.create(
        name="support.v2", path="datasets/support.v2.jsonl", source="generated", status="generating", **fields
    )
    assert versions.version_child_fields(parent=support, op="curate", params={})["version"] == 3
    with pytest.raises(InvalidArgument):
        versions.version_child_fields(parent=child, op="curate", params={})  # not ready


@pytest.mark.parametrize(
    ("family", "expected"),
    [("PA.", "PA.v2"), ("a" * 128, "a" * 125 + ".v2"), ("b" * 124 + ".xyz", "b" * 124 + ".v2")],
)
def test_a_default_version_name_is_a_valid_name(user, family, expected):
    # Found by the contract test: "PA." + ".v2" had "..", a 400 for a request the schema allows.
    parent = services.dataset_upload(owner=user, name=family, data=jsonl(INSTRUCTION_ROWS))
    name = versions.version_default_name(parent=parent)
    assert name == expected and validate_name(name) == name


def test_a_version_chain_reads_back_whole_from_the_db_and_the_files(user, support, data_root):
    """The chain lives in the DB rows and the files: read back fresh, every link and every
    sha256 still holds (what a restarted control plane sees)."""
    v2 = versions.dataset_edit(owner=user, parent=support, name=None, data=jsonl(INSTRUCTION_ROWS + EXTRA))
    other = services.dataset_upload(owner=user, name="other", data=jsonl(CHAT_ROWS))
    v3 = versions.dataset_merge(owner=user, name=None, sources=[v2, other])
    fresh = Dataset.objects.get(pk=v3.pk)  # no cached objects: what a new process reads
    chain = [*versions.dataset_lineage(dataset=fresh).ancestors, fresh]
    assert [(d.name, d.version) for d in chain] == [("support", 1), ("support.v2", 2), ("support.v3", 3)]
    for dataset in chain:
        assert sha(data_root / dataset.path) == dataset.sha256
    assert [entry["sha256"] for entry in fresh.operation["inputs"]] == [
        sha(data_root / v2.path),
        other.sha256,
    ]


CREATE_CHAIN = """
from django.core.management import call_command
from control_plane.datasets import services, versions
call_command("migrate", verbosity=0)
rows = b'{"instruction": "a", "output": "b"}\\n'
root = services.dataset_upload(owner=None, name="faq", data=rows)
v2 = versions.dataset_edit(owner=None, parent=root, name=None, data=rows + b'{"instruction": "c", "output": "d"}\\n')
versions.dataset_merge(owner=None, name=None, sources=[v2, root], dedupe=True)
"""
READ_CHAIN = """
import json
from control_plane.datasets import storage, versions
from control_plane.datasets.models import Dataset
from synthtune.files import sha256_file
last = Dataset.objects.get(name="faq.v3")
chain = [*versions.dataset_lineage(dataset=last).ancestors, last]
print(json.dumps([[d.name, d.version, d.operation["op"], d.sha256 == sha256_file(storage.absolute(d.path))]
                  for d in chain]))
"""


@pytest.mark.django_db(databases=[])  # the processes below use their own database file
def test_a_version_chain_survives_a_control_plane_restart(tmp_path):
    """Made by one control-plane process, read back whole by the next (DB file + files)."""
    import os
    import subprocess
    import sys

    root = tmp_path / "root"
    root.mkdir()
    env = {**os.environ, "SYNTHTUNE_DATA_ROOT": str(root), "DATABASE_URL": f"sqlite:///{tmp_path / 'cp.sqlite3'}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def control_plane(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "control_plane", *args], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    control_plane("shell", "-c", CREATE_CHAIN)
    chain = json.loads(control_plane("shell", "-c", READ_CHAIN).strip().splitlines()[-1])
    assert chain == [["faq", 1, "upload", True], ["faq.v2", 2, "edit", True], ["faq.v3", 3, "merge", True]]
