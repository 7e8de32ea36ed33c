"""Admin: staff only, login everywhere, previews, the Generate and Upload forms, cancel."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from control_plane.datasets import services
from control_plane.datasets.models import Dataset, GenerationJob
from tests.control_plane.factories import GenerationJobFactory, JobEventFactory
from tests.control_plane.helpers import INSTRUCTION_ROWS, follow_to_end, jsonl

pytestmark = pytest.mark.django_db

GENERATE = "/admin/datasets/dataset/generate/"
UPLOAD = "/admin/datasets/dataset/upload/"
TOKEN = "admin-form-token-0123456789"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def generate_form(teacher=None, **overrides) -> dict:
    form = {
        "name": "from-admin",
        "base_url": teacher.base_url if teacher else "http://127.0.0.1:9/v1",
        "model": teacher.model if teacher else "unused",
        "token": TOKEN,
        "mode": "from_instructions",
        "instructions": "Explain DNS.\nExplain TCP.\n\nExplain UDP.",
    }
    form.update(overrides)
    return form


@pytest.mark.parametrize("url", ["/", "/admin/", GENERATE, UPLOAD, "/admin/datasets/generationjob/"])
def test_anonymous_users_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", ["/admin/", GENERATE, "/admin/datasets/dataset/"])
def test_logged_in_non_staff_users_cannot_use_the_admin(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_dataset_list_filters_and_search(admin_client, staff):
    services.dataset_upload(owner=staff, name="alpha", data=jsonl(INSTRUCTION_ROWS))
    Dataset.objects.create(name="beta", path="datasets/beta.jsonl", source="generated", status="generating")
    page = admin_client.get("/admin/datasets/dataset/").content.decode()
    assert "alpha" in page and "beta" in page and "Generate dataset" in page
    filtered = admin_client.get("/admin/datasets/dataset/", {"status__exact": "ready"}).content.decode()
    assert ">alpha<" in filtered and ">beta<" not in filtered
    searched = admin_client.get("/admin/datasets/dataset/", {"q": "bet"}).content.decode()
    assert ">beta<" in searched and ">alpha<" not in searched


def test_dataset_page_shows_a_preview_of_the_first_rows(admin_client, staff):
    dataset = services.dataset_upload(owner=staff, name="previewed", data=jsonl(INSTRUCTION_ROWS))
    page = admin_client.get(reverse("admin:datasets_dataset_change", args=[dataset.pk])).content.decode()
    assert page.count('class="preview-row"') == 3
    assert "Name a colour." in page and "Blue." in page and "Be brief." in page


def test_generate_and_upload_forms_render(admin_client):
    page = admin_client.get(GENERATE).content.decode()
    assert 'id="generate-form"' in page and 'type="password" name="token"' in page
    assert 'name="instructions"' in page and "Start generation" in page
    page = admin_client.get(UPLOAD).content.decode()
    assert 'enctype="multipart/form-data"' in page and 'type="file" name="file"' in page


def test_generate_form_errors_name_the_field_and_never_echo_the_token(admin_client):
    response = admin_client.post(GENERATE, generate_form(base_url="ftp://nope", name="../up"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "plain name" in page  # the name error, from synthtune.paths via GenerationParams
    assert TOKEN not in page  # password input, render_value=False
    response = admin_client.post(GENERATE, generate_form(base_url="ftp://nope"))
    assert "base_url must be an http(s) URL" in response.content.decode()
    response = admin_client.post(GENERATE, generate_form(base_url="http://127.0.0.1:9/v1", num_rows="0"))
    assert "Ensure this value is greater than or equal to 1" in response.content.decode()
    assert not Dataset.objects.exists()


def test_generate_form_with_datagen_down_shows_the_address(admin_client, cp_settings):
    page = admin_client.post(GENERATE, generate_form(base_url="http://127.0.0.1:9/v1")).content.decode()
    assert cp_settings.SYNTHTUNE_DATAGEN_ADDR in page and "unavailable" in page
    assert not Dataset.objects.exists()


def test_generate_form_starts_a_job_and_shows_its_live_progress_page(admin_client, datagen, teacher):
    response = admin_client.post(GENERATE, generate_form(teacher))
    job = GenerationJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:datasets_generationjob_change", args=[job.pk])
    assert job.target_rows == 3 and job.dataset.params["instructions"][1] == "Explain TCP."

    follow_to_end(job.job_id)
    page = admin_client.get(response["Location"]).content.decode()
    assert f'data-stream-url="/api/v1/generation-jobs/{job.job_id}/events/stream/"' in page
    assert "core/job_progress.js" in page and 'id="job-state">succeeded<' in page
    assert "dataset_written" in page  # the event log
    assert admin_client.get("/static/core/job_progress.js").status_code == 200


def test_upload_form_reports_bad_lines_and_stores_good_files(admin_client):
    bad = SimpleUploadedFile("bad.jsonl", jsonl(INSTRUCTION_ROWS) + b"{oops\n")
    page = admin_client.post(UPLOAD, {"file": bad}).content.decode()
    assert "line 4" in page and not Dataset.objects.exists()
    good = SimpleUploadedFile("good.jsonl", jsonl(INSTRUCTION_ROWS))
    response = admin_client.post(UPLOAD, {"file": good})
    dataset = Dataset.objects.get(name="good")
    assert response["Location"] == reverse("admin:datasets_dataset_change", args=[dataset.pk])


def test_job_pages_and_the_cancel_action_go_through_the_service(admin_client, cp_settings):
    job = GenerationJobFactory(state="running")
    JobEventFactory(job=job, seq=1)
    assert admin_client.get("/admin/datasets/generationjob/").status_code == 200
    response = admin_client.post(
        "/admin/datasets/generationjob/", {"action": "cancel_jobs", "_selected_action": [job.pk]}, follow=True
    )
    # The service is down in this test: the action reports the service's error, not a 500.
    assert cp_settings.SYNTHTUNE_DATAGEN_ADDR in response.content.decode()
    response = admin_client.post(reverse("admin:datasets_generationjob_cancel", args=[job.pk]), follow=True)
    assert cp_settings.SYNTHTUNE_DATAGEN_ADDR in response.content.decode()
    job.refresh_from_db()
    assert job.state == "running"


@pytest.mark.parametrize("model", ["dataset", "generationjob"])
def test_unknown_or_malformed_ids_redirect_instead_of_failing(admin_client, model):
    for object_id in ("999", "not-a-number"):
        response = admin_client.get(f"/admin/datasets/{model}/{object_id}/change/")
        assert response.status_code == 302 and response["Location"] == "/admin/"


def test_admin_forms_cannot_add_or_edit_rows_by_hand(admin_client):
    assert admin_client.get("/admin/datasets/dataset/add/").status_code == 403
    dataset = Dataset.objects.create(name="ro", path="datasets/ro.jsonl", source="uploaded", status="ready")
    response = admin_client.post(
        reverse("admin:datasets_dataset_change", args=[dataset.pk]), {"name": "renamed"}
    )
    assert response.status_code == 403
    dataset.refresh_from_db()
    assert dataset.name == "ro"
