"""The worker's reconcile follower: offered once per SYNTHTUNE_RECONCILE_S, and a proxy that is
down is an error the worker retries with backoff (not a crash, not a silent success)."""

from __future__ import annotations

import pytest

from control_plane.core.errors import Unavailable
from control_plane.deployments.worker import KEY, ReconcileFollower
from tests.control_plane.deployments.factories import DeploymentFactory


@pytest.mark.django_db
def test_a_check_is_offered_once_per_interval(settings):
    settings.SYNTHTUNE_RECONCILE_S = 3600
    follower = ReconcileFollower()
    assert follower.pending() == [KEY]
    with pytest.raises(Unavailable):  # the proxy is down (proxy_down): the worker backs off
        follower.follow(KEY)
    assert follower.pending() == []  # not again until the interval has passed


@pytest.mark.django_db
def test_a_proxy_that_is_down_changes_no_state(cp_settings):
    row = DeploymentFactory()
    with pytest.raises(Unavailable) as error:
        ReconcileFollower().follow(KEY)
    assert cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR in error.value.message
    row.refresh_from_db()
    assert row.state == "loaded" and row.checked_at is None  # unknown is not "lost"
