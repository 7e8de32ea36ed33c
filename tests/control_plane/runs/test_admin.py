"""Admin for runs: the Fine-tune action and form, the run page (progress, loss curve data,
events, cancel), adapters with their manifests. Writes go through the same services as the API."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from control_plane.runs.models import Run
from control_plane.runs.selectors import run_loss_history
from tests.control_plane.runs.factories import AdapterFactory, RunEventFactory, RunFactory
from tests.control_plane.runs.helpers import follow_to_end, make_dataset

pytestmark = pytest.mark.django_db

FINE_TUNE = "/admin/runs/run/fine-tune/"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def fine_tune_form(**overrides) -> dict:
    form = {"datasets": ["colours"], "base_model": "tiny-phi3", "epochs": "1", "max_length": "128",
            "learning_rate": "0.005"}  # fmt: skip
    form.update(overrides)
    return form


@pytest.mark.parametrize("url", [FINE_TUNE, "/admin/runs/run/", "/admin/runs/adapter/"])
def test_anonymous_and_non_staff_users_are_sent_to_the_login_page(client, user, url):
    assert client.get(url)["Location"].startswith("/admin/login/")
    client.force_login(user)
    assert client.get(url)["Location"].startswith("/admin/login/")


def test_the_fine_tune_action_opens_the_form_with_the_datasets_ticked(admin_client):
    first, second = make_dataset("alpha"), make_dataset("beta")
    make_dataset("gamma")
    response = admin_client.post(
        "/admin/datasets/dataset/", {"action": "fine_tune", "_selected_action": [first.pk, second.pk]}
    )
    assert response.status_code == 302 and response["Location"] == f"{FINE_TUNE}?datasets=alpha&datasets=beta"
    page = admin_client.get(response["Location"]).content.decode()
    assert 'id="fine-tune-form"' in page and "Start fine-tuning" in page
    checked = set(re.findall(r'<input type="checkbox" name="datasets" value="([^"]+)"[^>]*checked', page))
    assert checked == {"alpha", "beta"}
    assert 'value="gamma"' in page and 'value="microsoft/Phi-3-mini-4k-instruct"' in page


def test_form_errors_name_the_field_and_start_nothing(admin_client):
    make_dataset()
    page = admin_client.post(FINE_TUNE, fine_tune_form(learning_rate="0")).content.decode()
    assert "learning_rate=0 is out of range" in page
    page = admin_client.post(FINE_TUNE, fine_tune_form(adapter_name="../up")).content.decode()
    assert "plain name" in page
    page = admin_client.post(FINE_TUNE, fine_tune_form(epochs="500")).content.decode()
    assert "less than or equal to 100" in page
    page = admin_client.post(FINE_TUNE, fine_tune_form(datasets=["nope"])).content.decode()
    assert "Select a valid choice" in page
    assert not Run.objects.exists()


def test_form_with_the_trainer_down_shows_its_address(admin_client, cp_settings):
    make_dataset()
    page = admin_client.post(FINE_TUNE, fine_tune_form()).content.decode()
    assert cp_settings.SYNTHTUNE_TRAINER_ADDR in page and "unavailable" in page
    assert not Run.objects.exists()


def test_the_trainers_refusal_lands_on_the_form_field(admin_client, trainer):
    make_dataset()
    response = admin_client.post(FINE_TUNE, fine_tune_form(max_length="4096"))
    page = response.content.decode()
    assert response.status_code == 200 and "2048" in page
    assert re.search(r'class="form-row errors"[^<]*>\s*<ul class="errorlist"[^>]*>.*?max_length', page, re.S)
    assert not Run.objects.exists()


@pytest.mark.slow
def test_form_starts_a_run_whose_page_shows_progress_the_loss_curve_and_the_adapter(admin_client, trainer):
    make_dataset()
    response = admin_client.post(FINE_TUNE, fine_tune_form(target_modules="all-linear"))
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:runs_run_change", args=[run.pk]
    )
    assert run.hyperparameters["target_modules"] == ["all-linear"] and run.hyperparameters["epochs"] == 1.0

    run = follow_to_end(run.run_id)
    page = admin_client.get(response["Location"]).content.decode()
    assert f'data-stream-url="/api/v1/runs/{run.run_id}/events/stream/"' in page
    assert "runs/run_progress.js" in page and 'id="run-state">succeeded<' in page
    assert 'id="run-progress-bar" style="width: 100%"' in page
    history = json.loads(
        re.search(r'<script id="loss-history" type="application/json">(.*?)</script>', page).group(1)
    )
    assert [point[0] for point in history["train"]] == list(range(1, run.max_steps + 1))
    assert len(history["eval"]) == 1
    assert 'id="loss-train-path"' in page and "exported" in page  # the chart and the event log
    adapter = run.adapter
    assert reverse("admin:runs_adapter_change", args=[adapter.pk]) in page
    adapter_page = admin_client.get(reverse("admin:runs_adapter_change", args=[adapter.pk])).content.decode()
    assert 'id="adapter-manifest"' in adapter_page and run.run_id in adapter_page
    assert f"/api/v1/adapters/{adapter.name}/manifest/" in adapter_page
    assert admin_client.get("/static/runs/run_progress.js").status_code == 200


def test_run_page_of_a_running_run_has_its_history_and_a_cancel_button(admin_client, cp_settings):
    run = RunFactory(state="running", step=3, max_steps=10, last_seq=3)
    for seq in (1, 2, 3):
        RunEventFactory(run=run, seq=seq)
    page = admin_client.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()
    assert 'id="run-progress-bar" style="width: 30%"' in page and 'data-last-seq="3"' in page
    history = json.loads(
        re.search(r'<script id="loss-history" type="application/json">(.*?)</script>', page).group(1)
    )
    assert history == {"train": [[1, 2.9], [2, 2.8], [3, 2.7]], "eval": []}
    assert 'form="cancel-run-form"' in page
    # The trainer is down in this test: cancel reports its error, not a 500, and changes nothing.
    response = admin_client.post(reverse("admin:runs_run_cancel", args=[run.pk]), follow=True)
    assert cp_settings.SYNTHTUNE_TRAINER_ADDR in response.content.decode()
    response = admin_client.post(
        "/admin/runs/run/", {"action": "cancel_runs", "_selected_action": [run.pk]}, follow=True
    )
    assert cp_settings.SYNTHTUNE_TRAINER_ADDR in response.content.decode()
    run.refresh_from_db()
    assert run.state == "running"
    assert admin_client.get(reverse("admin:runs_run_cancel", args=[run.pk])).status_code == 403  # POST only


def test_adapter_list_detail_and_lookup_by_name(admin_client):
    adapter = AdapterFactory(manifest={"run_id": "r1", "metrics": {"train_loss": 0.5}})
    page = admin_client.get("/admin/runs/adapter/").content.decode()
    assert adapter.name in page and adapter.run.run_id in page
    detail = admin_client.get(reverse("admin:runs_adapter_change", args=[adapter.pk])).content.decode()
    assert "&quot;train_loss&quot;: 0.5" in detail
    response = admin_client.get(reverse("admin:runs_adapter_by_name"), {"name": adapter.name})
    assert response["Location"] == reverse("admin:runs_adapter_change", args=[adapter.pk])
    assert admin_client.get(reverse("admin:runs_adapter_by_name"), {"name": "nope"}).status_code == 404


def test_rows_cannot_be_added_or_edited_by_hand(admin_client):
    assert admin_client.get("/admin/runs/run/add/").status_code == 403
    assert admin_client.get("/admin/runs/adapter/add/").status_code == 403
    run = RunFactory()
    assert (
        admin_client.post(reverse("admin:runs_run_change", args=[run.pk]), {"state": "succeeded"}).status_code
        == 403
    )


def test_a_long_loss_history_is_thinned_but_keeps_its_ends():
    run = RunFactory()
    for seq in range(1, 24):
        RunEventFactory(run=run, seq=seq)
    train = run_loss_history(run=run, max_points=5)["train"]
    assert [point[0] for point in train] == [1, 6, 11, 16, 21, 23]
    assert len(run_loss_history(run=run)["train"]) == 23
