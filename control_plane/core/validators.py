"""Checks that more than one API, form or service takes alike."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def top_p_above_zero(value: float | None) -> None:
    """top_p is in (0, 1], as datagen, the serving proxy and vLLM take it: 0 would keep no token.
    A Django ValidationError, so DRF serializers and admin forms both report it on the field."""
    if value is not None and value == 0:
        raise ValidationError("Must be greater than 0 and at most 1.")
