"""Admin for runs: the Start fine-tune button, action and form, the run page (progress, loss
curve data, events, cancel), adapters with their manifests and Load button. Writes go through
the same services as the API."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from control_plane.runs.forms import FineTuneForm
from control_plane.runs.models import Run
from control_plane.runs.params import DEFAULT_BASE_MODEL
from control_plane.runs.selectors import run_base_model_suggestions, run_loss_history
from tests.control_plane.deployments.factories import DeploymentFactory
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


def test_the_runs_list_has_a_start_fine_tune_button_and_the_datasets_list_the_action(admin_client):
    page = admin_client.get("/admin/runs/run/").content.decode()
    assert re.search(rf'<a href="{FINE_TUNE}"[^>]*id="start-fine-tune"[^>]*>Start fine-tune</a>', page)
    make_dataset()
    page = admin_client.get("/admin/datasets/dataset/").content.decode()
    assert '<option value="fine_tune">Start fine-tune on the selected datasets</option>' in page


def test_the_form_asks_for_the_main_things_first_and_leaves_blanks_to_the_trainer(admin_client):
    make_dataset()
    page = admin_client.get(FINE_TUNE).content.decode()
    names = re.findall(r'<(?:input|select)[^>]*name="(\w+)"', page)
    names = list(dict.fromkeys(name for name in names if name not in ("csrfmiddlewaretoken", "_submit")))
    assert names[:7] == ["datasets", "base_model", "adapter_name", "epochs", "learning_rate", "max_length",
                         "batch_size"]  # fmt: skip
    assert "<h2>Training</h2>" in page and "Blank: the trainer&#x27;s default" in page
    form = FineTuneForm(
        {"datasets": ["colours"], "base_model": " tiny-phi3 ", "epochs": "2", "batch_size": ""}
    )
    assert form.is_valid(), form.errors
    assert form.params() == {"datasets": ["colours"], "base_model": "tiny-phi3", "hyperparameters": {"epochs": 2.0},
                             "adapter_name": "", "merge_full_model": False, "eval_datasets": []}  # fmt: skip
    # The eval datasets picker, under Evals and tracking, as the datasets one is.
    make_dataset("held")
    page = admin_client.get(FINE_TUNE).content.decode()
    assert re.search(r"<h2>Evals and tracking</h2>.*name=\"eval_datasets\" value=\"held\"", page, re.S)
    form = FineTuneForm({"datasets": ["colours"], "eval_datasets": ["held"], "base_model": "tiny-phi3"})
    assert form.is_valid(), form.errors
    assert form.params()["eval_datasets"] == ["held"]


def test_base_model_suggestions_put_what_vllm_serves_first_then_what_trained_here(admin_client):
    RunFactory(base_model="tiny-llama", state="succeeded")
    RunFactory(base_model="broken-model", state="failed")  # never trained: not suggested
    RunFactory(base_model="tiny-phi3", state="succeeded")
    assert run_base_model_suggestions(served=["tiny-phi3", "org/served"]) == [
        ("tiny-phi3", "served by vLLM"),
        ("org/served", "served by vLLM"),
        ("tiny-llama", "trained here before"),
        (DEFAULT_BASE_MODEL, "the API's default"),
    ]
    # On the form (the proxy is down in this test: only the history, no error): the newest
    # model trained here is filled in, the others offered in the datalist.
    response = admin_client.get(FINE_TUNE)
    page = response.content.decode()
    assert response.status_code == 200
    assert re.search(
        r'<input type="text" name="base_model" value="tiny-phi3"[^>]*list="id_base_model-options"', page
    )
    options = re.findall(r'<option value="([^"]+)" label="([^"]+)">', page)
    assert options == [("tiny-phi3", "trained here before"), ("tiny-llama", "trained here before"),
                       (DEFAULT_BASE_MODEL, "the API&#x27;s default")]  # fmt: skip
    assert "broken-model" not in page


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
    response = admin_client.post(FINE_TUNE, fine_tune_form())
    page = response.content.decode()
    assert response.status_code == 200  # the form again, with the reason on top: not a 500
    note = re.search(r'<p class="errornote">([^<]*)</p>', page).group(1)
    assert cp_settings.SYNTHTUNE_TRAINER_ADDR in note and "unavailable" in note
    assert re.search(r'name="datasets" value="colours"[^>]*checked', page)  # what was asked is kept
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


def test_run_page_shows_the_world_size_effective_batch_where_it_resumed_and_the_eval_datasets(admin_client):
    distributed = {"num_nodes": 1, "processes_per_node": 2, "world_size": 2, "effective_batch_size": 16}
    run = RunFactory(state="running", config={"hyperparameters": {"distributed": distributed}},
                     resumed_from_step=50, resumes=1)  # fmt: skip
    run.eval_datasets.set([make_dataset("held-out-faq")])
    page = admin_client.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode()
    assert re.search(r"2 processes, effective batch 16\s*<span id=\"run-resumed\">", page), page
    assert re.search(r"Eval datasets:</label>\s*<div class=\"readonly\">held-out-faq</div>", page), page
    assert 'resumed from step <span id="run-resumed-step">50</span>' in page
    fresh = RunFactory(state="queued")  # not resumed, config not resolved yet
    page = admin_client.get(reverse("admin:runs_run_change", args=[fresh.pk])).content.decode()
    assert re.search(r"1 process\s*<span id=\"run-resumed\" hidden>", page), page


def test_the_resume_action_names_what_it_cannot_resume(admin_client, cp_settings):
    failed = RunFactory(state="failed", error="the training process was killed by SIGKILL")
    done = RunFactory(state="succeeded")
    response = admin_client.post(
        "/admin/runs/run/", {"action": "resume_runs", "_selected_action": [failed.pk, done.pk]}, follow=True
    )
    page = response.content.decode()
    # (the admin capitalises a message's first letter)
    assert f"{done.run_id.capitalize()}: Run {done.run_id} is succeeded; only a failed run can be resumed." in page
    assert cp_settings.SYNTHTUNE_TRAINER_ADDR in page  # the failed one: the trainer is down in this test
    failed.refresh_from_db()
    assert failed.state == "failed"


def test_adapter_list_detail_and_lookup_by_name(admin_client):
    adapter = AdapterFactory(manifest={"run_id": "r1", "metrics": {"train_loss": 0.5}})
    page = admin_client.get("/admin/runs/adapter/").content.decode()
    assert adapter.name in page and adapter.run.run_id in page
    detail = admin_client.get(reverse("admin:runs_adapter_change", args=[adapter.pk])).content.decode()
    assert "&quot;train_loss&quot;: 0.5" in detail
    response = admin_client.get(reverse("admin:runs_adapter_by_name"), {"name": adapter.name})
    assert response["Location"] == reverse("admin:runs_adapter_change", args=[adapter.pk])
    assert admin_client.get(reverse("admin:runs_adapter_by_name"), {"name": "nope"}).status_code == 404


def test_adapter_page_has_a_load_button_that_goes_through_the_deployments_service(admin_client, cp_settings):
    adapter = AdapterFactory()
    url = reverse("admin:runs_adapter_change", args=[adapter.pk])
    page = admin_client.get(url).content.decode()
    assert "Not loaded into vLLM." in page and 'id="load-adapter"' in page
    load = reverse("admin:runs_adapter_load", args=[adapter.pk])
    assert f'<form id="load-adapter-form" method="post" action="{load}">' in page
    assert f'href="/admin/deployments/deployment/compare/?adapter={adapter.name}"' in page
    # The proxy is down in this test: the page says so with its address, not a 500.
    response = admin_client.post(load, follow=True)
    assert response.redirect_chain == [(url, 302)]
    assert cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR in response.content.decode()
    assert not adapter.deployments.exists()
    assert admin_client.get(load).status_code == 403  # POST only

    DeploymentFactory(adapter=adapter, served_name=f"{adapter.name}-s1", target="http://vllm:8000")
    page = admin_client.get(url).content.decode()
    assert f"Loaded as <code>{adapter.name}-s1</code> on http://vllm:8000." in page


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
