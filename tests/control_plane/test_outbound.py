"""The datagen service's outbound policy over REST: a 400 naming the API's own field, nothing stored."""

from __future__ import annotations

import pytest

from control_plane.datasets.models import Dataset
from tests.control_plane.helpers import assert_error_body, generate_body

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/generation-jobs/"


@pytest.mark.parametrize(("overrides", "field", "rule"), [
    ({"base_url": "http://169.254.169.254/latest/v1"}, "base_url", "169.254.0.0/16"),
    ({"filters": {"judge": {"base_url": "http://[fd00:ec2::254]/v1", "model": "judge"}}},
     "filters.judge.base_url", "fd00:ec2::254/128"),
], ids=["teacher at the metadata address", "judge at AWS's IPv6 metadata address"])
def test_a_teacher_or_judge_url_the_policy_denies_is_a_400_naming_the_field(api, datagen, overrides, field, rule):
    error = assert_error_body(api.post(JOBS, generate_body(**overrides), format="json"), 400, "INVALID_ARGUMENT")
    assert error["extra"]["field"] == field
    assert rule in error["message"] and "SYNTHTUNE_OUTBOUND_DENY" in error["message"]
    assert not Dataset.objects.exists()
