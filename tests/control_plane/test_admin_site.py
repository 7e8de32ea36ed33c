"""The admin home page: the pipeline in order (1 Generate, 2 Fine-tune, 3 Serve, 4 Compare),
what is running now, the latest item of each step, the next action of each, and the usual
app list below it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from control_plane.core.selectors import pipeline_overview
from control_plane.datasets.models import Dataset, GenerationJob
from control_plane.deployments.models import Deployment
from control_plane.runs.models import Run
from tests.control_plane.deployments.factories import ComparisonFactory, DeploymentFactory
from tests.control_plane.factories import DatasetFactory, GenerationJobFactory, UserFactory
from tests.control_plane.runs.factories import AdapterFactory, RunFactory

pytestmark = pytest.mark.django_db

STEPS = ("generate", "fine_tune", "serve", "compare")


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def _home(client) -> str:
    response = client.get("/admin/")
    assert response.status_code == 200
    return response.content.decode()


def _section(page: str, key: str) -> str:
    """One step's card (or "running-now"), up to the next card."""
    start = page.index(f'id="step-{key}"' if key != "running-now" else 'id="running-now"')
    ends = [page.find(marker, start + 1) for marker in ('id="step-', "</ol>")]
    return page[start : min(end for end in ends if end > 0)]


def _href(section: str, element_id: str) -> str:
    match = re.search(rf'<a [^>]*href="([^"]*)"[^>]*id="{element_id}"', section)
    assert match, f"no link #{element_id} in:\n{section}"
    return match.group(1).replace("&amp;", "&")


@pytest.fixture
def pipeline(staff):
    """A bit of everything, oldest first: a ready dataset, a succeeded run with its adapter, which
    is loaded and was compared; then a dataset still generating, a queued and a running run."""
    ready = DatasetFactory(name="faq-v1", status=Dataset.Status.READY, rows=24, source="uploaded")
    done = RunFactory(run_id="run-done", state=Run.State.SUCCEEDED, step=10)
    done.datasets.set([ready])
    adapter = AdapterFactory(name="faq-lora-v1", run=done)
    deployment = DeploymentFactory(adapter=adapter, served_name="faq-lora-v1", target="http://vllm:8000")
    comparison = ComparisonFactory(adapter=adapter)
    old_job = GenerationJobFactory(dataset=ready, state=GenerationJob.State.SUCCEEDED)
    job = GenerationJobFactory(
        dataset=DatasetFactory(name="faq-v2"), state=GenerationJob.State.RUNNING, kept=3, target_rows=12
    )
    queued = RunFactory(run_id="run-queued", state=Run.State.QUEUED, queue_position=1, max_steps=0)
    running = RunFactory(run_id="run-live", state=Run.State.RUNNING, step=4, max_steps=10)
    return {
        "ready": ready, "adapter": adapter, "deployment": deployment, "comparison": comparison,
        "old_job": old_job, "job": job, "queued": queued, "running": running,
    }  # fmt: skip


def test_home_shows_the_pipeline_in_order_before_the_app_list(admin_client):
    page = _home(admin_client)
    positions = [page.index(f'id="step-{key}"') for key in STEPS]
    assert positions == sorted(positions)
    titles = re.findall(r'<span class="step-number">(\d)</span> ([\w-]+)</h2>', page)
    assert titles == [("1", "Generate"), ("2", "Fine-tune"), ("3", "Serve"), ("4", "Compare")]
    # The usual app list (Tokens, Groups, Users...) is still there, after the pipeline.
    assert positions[-1] < page.index('id="app-list-title"') < page.index("Authentication and Authorization")
    for name in ("Tokens", "Groups", "Users", "Datasets", "Runs", "Adapters", "Deployments"):
        assert f">{name}</a>" in page


def test_an_empty_home_says_what_to_do_first(admin_client):
    page = _home(admin_client)
    assert 'id="running-none"' in page and "Nothing is running." in page
    assert "No dataset yet." in _section(page, "generate")
    assert _href(_section(page, "generate"), "action-generate") == reverse("admin:datasets_dataset_generate")
    assert _href(_section(page, "generate"), "action-upload") == reverse("admin:datasets_dataset_upload")
    fine_tune = _section(page, "fine_tune")
    assert _href(fine_tune, "action-fine-tune") == reverse("admin:runs_run_fine_tune")
    assert "Needs a ready dataset" in fine_tune
    serve = _section(page, "serve")
    assert _href(serve, "action-load") == reverse("admin:runs_adapter_changelist")
    assert "Needs an adapter" in serve
    compare = _section(page, "compare")
    assert _href(compare, "action-compare") == reverse("admin:deployments_compare")
    assert "Needs a loaded adapter" in compare


def test_home_shows_what_runs_now_with_links_to_its_progress(admin_client, pipeline):
    running = _section(_home(admin_client), "running-now")
    links = re.findall(
        r'<a href="([^"]+)">([^<]+)</a>\s*<span class="pipeline-state" data-state="(\w+)"', running
    )
    assert links == [
        (reverse("admin:datasets_generationjob_change", args=[pipeline["job"].pk]), "faq-v2", "running"),
        (reverse("admin:runs_run_change", args=[pipeline["queued"].pk]), "run-queued", "queued"),
        (reverse("admin:runs_run_change", args=[pipeline["running"].pk]), "run-live", "running"),
    ]
    assert "3/12 rows" in running and "40%, step 4/10" in running and "queue position 1" in running
    assert "run-done" not in running and 'id="running-none"' not in running


def test_home_shows_the_latest_item_of_each_step_and_the_next_actions(admin_client, pipeline):
    page = _home(admin_client)
    generate = _section(page, "generate")
    # The newest dataset, even while it is still generating.
    assert _href(generate, "latest-dataset") == reverse(
        "admin:datasets_dataset_change", args=[Dataset.objects.get(name="faq-v2").pk]
    )
    assert 'data-state="generating"' in generate

    fine_tune = _section(page, "fine_tune")
    assert _href(fine_tune, "latest-run") == reverse("admin:runs_run_change", args=[pipeline["running"].pk])
    # Start fine-tune opens with the newest *ready* dataset ticked.
    assert _href(fine_tune, "action-fine-tune") == f"{reverse('admin:runs_run_fine_tune')}?datasets=faq-v1"
    assert "Opens with faq-v1 ticked." in fine_tune

    serve = _section(page, "serve")
    adapter_url = reverse("admin:runs_adapter_change", args=[pipeline["adapter"].pk])
    assert _href(serve, "latest-adapter") == adapter_url
    assert _href(serve, "action-load") == adapter_url  # its page has the Load button
    assert ">faq-lora-v1</a>" in serve and "on http://vllm:8000" in serve and 'data-state="loaded"' in serve

    compare = _section(page, "compare")
    assert _href(compare, "latest-comparison") == reverse(
        "admin:deployments_comparison_change", args=[pipeline["comparison"].pk]
    )
    assert _href(compare, "action-compare") == f"{reverse('admin:deployments_compare')}?adapter=faq-lora-v1"


def test_the_home_pages_links_open_their_pages(admin_client, pipeline):
    page = _home(admin_client)
    urls = {_href(_section(page, key), element_id) for key, element_id in (
        ("generate", "action-generate"), ("generate", "latest-dataset"), ("fine_tune", "action-fine-tune"),
        ("fine_tune", "latest-run"), ("serve", "action-load"), ("compare", "latest-comparison"),
    )}  # fmt: skip
    for url in urls:
        assert admin_client.get(url).status_code == 200, url
    # The preselected dataset really is ticked on the form it opens.
    form = admin_client.get(_href(_section(page, "fine_tune"), "action-fine-tune")).content.decode()
    assert re.search(r'<input type="checkbox" name="datasets" value="faq-v1"[^>]*checked', form)


def test_unloaded_and_lost_deployments_are_not_listed_as_loaded(admin_client, pipeline):
    pipeline["deployment"].state = Deployment.State.LOST
    pipeline["deployment"].save()
    DeploymentFactory(adapter=pipeline["adapter"], served_name="old-name", state=Deployment.State.UNLOADED)
    overview = pipeline_overview()
    assert overview.loaded == []
    page = _home(admin_client)
    assert "on http://vllm:8000" not in _section(page, "serve")
    assert "Needs a loaded adapter" in _section(page, "compare")


def test_users_who_may_only_look_see_the_items_but_no_actions(client):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(codename__in=["view_dataset", "view_run", "view_generationjob"])
    )
    client.force_login(viewer)
    DatasetFactory(name="seen", status=Dataset.Status.READY)
    RunFactory(run_id="run-seen")
    page = _home(client)
    assert 'id="latest-dataset"' in page and ">run-seen</a>" in _section(page, "running-now")
    for element_id in (
        "action-generate",
        "action-upload",
        "action-fine-tune",
        "action-load",
        "action-compare",
    ):
        assert f'id="{element_id}"' not in page
    assert 'id="latest-adapter"' not in page and 'id="latest-comparison"' not in page


def test_home_reads_the_db_only_and_stays_up_with_every_service_down(admin_client, pipeline, cp_settings):
    # Every service address in these tests points where nothing listens: still a page, fast.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "control_plane.core.clients.ServiceClient.call",
            lambda *a, **k: pytest.fail("the home page called a service"),
        )
        assert "faq-lora-v1" in _home(admin_client)
