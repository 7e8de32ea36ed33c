"""JSON bodies are held to the types the schema gives them.

DRF parses leniently, for form input, where every value is a string: a CharField takes 0 as "0",
a BooleanField takes 0, 1, "yes" and "off", an IntegerField takes "5". A JSON body has real
types, and the OpenAPI schema names them, so there `{"topic": 0}` or `{"skip_tls_verify": 0}` is
a mistake to report (400, the field named), not a value to guess at. Form and multipart bodies
and query strings keep DRF's parsing: they can only send strings.

`type_errors` walks a serializer's fields over the parsed body, nested serializers, lists and
dicts included, and returns DRF's error shape ({field: [message]}, {field: {index: [...]}});
an empty dict means every typed value has its type. Values DRF then checks further (ranges,
choices, lengths) are left to it; None is left to each field's allow_null.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

_NUMBER_FIELDS = (serializers.FloatField,)  # IntegerField has its own rule; DecimalField is a string in the schema
# Fields whose JSON value is a string: text, dates, durations and ids are all strings in JSON.
_STRING_FIELDS = (
    serializers.CharField,
    serializers.DateTimeField,
    serializers.DateField,
    serializers.TimeField,
    serializers.DurationField,
    serializers.UUIDField,
)


def type_errors(fields: dict[str, serializers.Field], data: Any) -> dict:
    """Errors for the values in `data` (a JSON object) whose JSON type their field doesn't take."""
    if not isinstance(data, dict):
        return {}  # the serializer itself refuses a body that isn't an object
    errors: dict = {}
    for name, field in fields.items():
        if field.read_only or name not in data:
            continue
        if problem := _problem(field, data[name]):
            errors[name] = problem
    return errors


def _problem(field: serializers.Field, value: Any) -> list | dict | None:
    if value is None:
        return None
    if isinstance(field, serializers.BaseSerializer):
        if isinstance(field, serializers.ListSerializer):
            return _items(field.child, value)
        return type_errors(field.fields, value) or None
    if isinstance(field, serializers.ListField):
        return _items(field.child, value)
    if isinstance(field, serializers.DictField):
        if not isinstance(value, dict):
            return None  # DictField says "Expected a dictionary"
        nested = {key: problem for key, item in value.items() if (problem := _problem(field.child, item))}
        return nested or None
    if isinstance(field, serializers.MultipleChoiceField):
        return _items(_choice_of(field), value)
    if isinstance(field, serializers.ChoiceField):
        return _choice(field, value)
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else ["Must be true or false."]
    if isinstance(field, serializers.IntegerField):
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return None if whole and not isinstance(value, bool) else ["Must be a whole number."]
    if isinstance(field, _NUMBER_FIELDS):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if numeric else ["Must be a number."]
    if isinstance(field, _STRING_FIELDS):
        return None if isinstance(value, str) else ["Must be a string."]
    return None  # JSONField and project fields (they check their own input)


def _items(child: serializers.Field, value: Any) -> dict | None:
    if not isinstance(value, list):
        return None  # ListField says "Expected a list of items"
    nested = {index: problem for index, item in enumerate(value) if (problem := _problem(child, item))}
    return nested or None


def _choice(field: serializers.ChoiceField, value: Any) -> list | None:
    # DRF matches str(value) against the choices, so 1 would pass for "1"; in JSON a choice has
    # the type of the choices themselves.
    if all(isinstance(choice, str) for choice in field.choices):
        return None if isinstance(value, str) else ["Must be a string."]
    if all(isinstance(choice, int) and not isinstance(choice, bool) for choice in field.choices):
        return None if isinstance(value, int) and not isinstance(value, bool) else ["Must be a whole number."]
    return None


def _choice_of(field: serializers.MultipleChoiceField) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=field.choices)
