"""Checks for the quality filters' parameters, raising InvalidArgument that names the field.

The filters call these with their own default field names; a request layer that
reads the values from a proto passes the proto path (e.g. "quality.near_dup_threshold")
so the error points at what the caller sent.
"""

from __future__ import annotations

import math
from numbers import Real

from synthtune.errors import InvalidArgument


def check_share(value: object, *, field: str, above: float, default: float, hint: str) -> float:
    """`value` as a float when above < value <= 1; else InvalidArgument naming `field` and the range.

    `hint` tells the caller which way to move the value (shown after the range).
    """
    # bool is a Real in Python; True as a threshold is a caller's bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
        raise InvalidArgument(
            f"{field} must be a number greater than {above:g} and at most 1 (got {value!r}); "
            f"the default is {default:g}.",
            field=field,
        )
    if not above < value <= 1:
        raise InvalidArgument(
            f"{field} must be greater than {above:g} and at most 1 (got {value:g}); "
            f"the default is {default:g}. {hint}",
            field=field,
        )
    return float(value)


def check_int(value: object, *, field: str, low: int, high: int, default: int, hint: str) -> int:
    """`value` when it is an integer in [low, high]; else InvalidArgument naming `field` and the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(
            f"{field} must be a whole number from {low} to {high} (got {value!r}); the default is {default}.",
            field=field,
        )
    if not low <= value <= high:
        raise InvalidArgument(
            f"{field} must be from {low} to {high} (got {value}); the default is {default}. {hint}",
            field=field,
        )
    return value
