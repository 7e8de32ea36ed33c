"""Admin for versions: lineage on the dataset page, the diff page, merge and new-version forms
(through the same services as the API), row metadata in the preview."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from control_plane.datasets import services, versions
from control_plane.datasets.models import Dataset
from tests.control_plane.helpers import CHAT_ROWS, INSTRUCTION_ROWS, jsonl

pytestmark = pytest.mark.django_db

EXTRA = {"instruction": "Say goodbye.", "output": "Bye!"}


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def change_url(dataset: Dataset) -> str:
    return f"/admin/datasets/dataset/{dataset.pk}/change/"


def test_the_dataset_page_shows_lineage_metadata_and_a_compare_picker(admin_client, staff, data_root):
    root = services.dataset_upload(owner=staff, name="faq", data=jsonl(INSTRUCTION_ROWS))
    v2 = versions.dataset_edit(
        owner=staff, parent=root, name=None, data=jsonl([*INSTRUCTION_ROWS[:2], EXTRA])
    )
    v3 = versions.dataset_edit(owner=staff, parent=v2, name=None, data=jsonl([EXTRA]))
    meta = {
        "strategy": "evol",
        "topic_path": ["geo", "rivers"],
        "judge": {"scores": {"clarity": 5}, "mean": 4.5, "reason": "Clear and correct."},
    }
    (data_root / "datasets/faq.v2.meta.jsonl").write_text(json.dumps(meta) + "\n")
    html = admin_client.get(change_url(v2)).content.decode()
    assert 'id="dataset-lineage"' in html and "faq, version 2" in html
    assert f'href="{change_url(root)}" class="lineage-ancestor">faq<' in html
    assert f'href="{change_url(v3)}" class="lineage-child">faq.v3<' in html
    assert f'action="/admin/datasets/dataset/{v2.pk}/diff/"' in html and 'value="faq"' in html
    assert "Strategy: evol" in html and "Topic: geo › rivers" in html and "Judge: 4.5 (clarity 5)" in html
    assert "Clear and correct." in html
    assert f"/admin/datasets/dataset/{v2.pk}/new-version/" in html


def test_the_diff_page_counts_and_shows_examples(admin_client, staff):
    root = services.dataset_upload(owner=staff, name="faq", data=jsonl(INSTRUCTION_ROWS))
    changed = {**INSTRUCTION_ROWS[0], "output": "Hi there!"}
    v2 = versions.dataset_edit(owner=staff, parent=root, name=None, data=jsonl([changed, EXTRA]))
    html = admin_client.get(f"/admin/datasets/dataset/{v2.pk}/diff/", {"against": "faq"}).content.decode()
    assert "1 added" in html and "2 removed" in html and "1 changed" in html
    assert "Say goodbye." in html and "Hi there!" in html and "Hello!" in html
    missing = admin_client.get(
        f"/admin/datasets/dataset/{v2.pk}/diff/", {"against": "faq@5"}
    ).content.decode()
    assert 'id="diff-error"' in missing and "no version 5" in missing


def test_merge_action_and_form_make_a_version(admin_client, staff):
    a = services.dataset_upload(owner=staff, name="a", data=jsonl(INSTRUCTION_ROWS))
    b = services.dataset_upload(owner=staff, name="b", data=jsonl(CHAT_ROWS))
    response = admin_client.post(
        "/admin/datasets/dataset/", {"action": "merge_datasets", "_selected_action": [a.pk, b.pk]}
    )
    assert response.status_code == 302 and response["Location"].endswith("merge/?sources=a&sources=b")
    form = admin_client.get(response["Location"]).content.decode()
    assert 'id="merge-form"' in form and "a\nb</textarea>" in form
    refused = admin_client.post("/admin/datasets/dataset/merge/", {"sources": "a\nnope", "dedupe": "on"})
    assert "No dataset named &#x27;nope&#x27;" in refused.content.decode()
    done = admin_client.post("/admin/datasets/dataset/merge/", {"sources": "a\nb", "dedupe": "on"})
    merged = Dataset.objects.get(name="a.v2")
    assert done.status_code == 302 and done["Location"] == change_url(merged)
    assert (merged.parent, merged.rows, merged.operation["op"]) == (a, 5, "merge")


def test_new_version_from_a_file(admin_client, staff):
    root = services.dataset_upload(owner=staff, name="faq", data=jsonl(INSTRUCTION_ROWS))
    url = f"/admin/datasets/dataset/{root.pk}/new-version/"
    assert 'id="new-version-form"' in admin_client.get(url).content.decode()
    bad = SimpleUploadedFile("x.jsonl", b'{"instruction": "x"}\n')
    assert "line 1" in admin_client.post(url, {"file": bad}).content.decode()
    good = SimpleUploadedFile("x.jsonl", jsonl([EXTRA]))
    response = admin_client.post(url, {"file": good, "name": "faq-edited"})
    edited = Dataset.objects.get(name="faq-edited")
    assert response["Location"] == change_url(edited) and (edited.parent, edited.version) == (root, 2)
