"""top_p is (0, 1] wherever a person or a client gives it: the admin's forms, like the APIs
(test_api, deployments/test_api) and datagen, refuse 0 on the field."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from control_plane.datasets.forms import GenerateForm
from control_plane.deployments.forms import CompareForm


@pytest.mark.parametrize("form", [GenerateForm, CompareForm])
def test_the_admin_forms_refuse_a_top_p_of_0_and_take_the_rest_of_the_range(form):
    field = form.base_fields["top_p"]
    with pytest.raises(ValidationError, match="greater than 0"):
        field.clean("0")
    assert [field.clean(value) for value in ("0.01", "1", "")] == [0.01, 1.0, None]

