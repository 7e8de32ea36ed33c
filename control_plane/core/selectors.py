"""Reads across the apps: the pipeline at a glance, for the admin's home page.

Only the DB is read (each app's own selectors), never a service: the home page must open
fast and work while a service is down. Deployment states are as last reconciled (the worker
checks them against vLLM every SYNTHTUNE_RECONCILE_S).
"""

from __future__ import annotations

from dataclasses import dataclass

from control_plane.datasets import selectors as dataset_selectors
from control_plane.datasets.models import Dataset, GenerationJob
from control_plane.deployments import selectors as deployment_selectors
from control_plane.deployments.models import Comparison, Deployment
from control_plane.runs import selectors as run_selectors
from control_plane.runs.models import Adapter, Run

ACTIVE_SHOWN = 10
LOADED_SHOWN = 5


@dataclass(frozen=True)
class PipelineOverview:
    """What is going on in each step of generate → fine-tune → serve → compare."""

    active_jobs: list[GenerationJob]
    active_runs: list[Run]
    latest_dataset: Dataset | None
    latest_ready_dataset: Dataset | None
    latest_run: Run | None
    latest_adapter: Adapter | None
    loaded: list[Deployment]  # newest first
    latest_comparison: Comparison | None


def pipeline_overview() -> PipelineOverview:
    """Running work (oldest first, at most ACTIVE_SHOWN of each kind), the newest item of each
    step, and the deployments recorded as loaded (newest first, at most LOADED_SHOWN)."""
    return PipelineOverview(
        active_jobs=list(dataset_selectors.generation_job_active_list()[:ACTIVE_SHOWN]),
        active_runs=list(run_selectors.run_active_list()[:ACTIVE_SHOWN]),
        latest_dataset=dataset_selectors.dataset_list().first(),
        latest_ready_dataset=dataset_selectors.dataset_list(status=Dataset.Status.READY).first(),
        latest_run=run_selectors.run_list().first(),
        latest_adapter=run_selectors.adapter_list().first(),
        loaded=list(deployment_selectors.deployment_list(state=Deployment.State.LOADED)[:LOADED_SHOWN]),
        latest_comparison=deployment_selectors.comparison_list().first(),
    )
