"""JSON bodies are held to their schema's types (core.json_types): DRF alone would take 0 for a
string or a boolean and "5" for a number. Each refusal is a 400 naming the field, before anything
is created or called; form-style parsing stays for multipart bodies."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework import serializers

from control_plane.core.json_types import type_errors
from control_plane.datasets.models import Dataset, GenerationJob
from control_plane.runs.models import Run
from tests.control_plane.helpers import INSTRUCTION_ROWS, assert_error_body, generate_body, jsonl


class Inner(serializers.Serializer):
    flag = serializers.BooleanField()


class Body(serializers.Serializer):
    name = serializers.CharField()
    count = serializers.IntegerField()
    rate = serializers.FloatField()
    on = serializers.BooleanField()
    kind = serializers.ChoiceField(choices=["a", "b"])
    tags = serializers.ListField(child=serializers.CharField())
    labels = serializers.DictField(child=serializers.IntegerField())
    inner = Inner()
    many = Inner(many=True)
    anything = serializers.JSONField()
    maybe = serializers.CharField(allow_null=True)


GOOD = {
    "name": "x", "count": 3, "rate": 2, "on": False, "kind": "a", "tags": ["t"], "labels": {"k": 1},
    "inner": {"flag": True}, "many": [{"flag": False}], "anything": [0, "x"], "maybe": None,
}


def test_values_of_their_json_type_pass():
    assert type_errors(Body().fields, GOOD) == {}
    assert type_errors(Body().fields, {**GOOD, "count": 3.0, "rate": 0.5}) == {}  # 3.0 is whole


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"name": 0}, {"name": ["Must be a string."]}),
        ({"count": "5"}, {"count": ["Must be a whole number."]}),
        ({"count": True}, {"count": ["Must be a whole number."]}),
        ({"count": 2.5}, {"count": ["Must be a whole number."]}),
        ({"rate": "0.5"}, {"rate": ["Must be a number."]}),
        ({"on": 0}, {"on": ["Must be true or false."]}),
        ({"on": "true"}, {"on": ["Must be true or false."]}),
        ({"kind": 1}, {"kind": ["Must be a string."]}),
        ({"tags": ["t", 2]}, {"tags": {1: ["Must be a string."]}}),
        ({"labels": {"k": "1"}}, {"labels": {"k": ["Must be a whole number."]}}),
        ({"inner": {"flag": 1}}, {"inner": {"flag": ["Must be true or false."]}}),
        ({"many": [{"flag": True}, {"flag": "no"}]}, {"many": {1: {"flag": ["Must be true or false."]}}}),
    ],
)
def test_a_value_of_another_json_type_is_named(change, errors):
    assert type_errors(Body().fields, {**GOOD, **change}) == errors


def test_shapes_the_serializer_refuses_itself_are_left_to_it():
    # Not an object, not a list, not a dict: DRF's own messages say so.
    assert type_errors(Body().fields, ["x"]) == {}
    assert type_errors(Body().fields, {**GOOD, "tags": "t", "labels": 1, "inner": 2}) == {}


# --- through the API: refused before anything is created or called -------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/generation-jobs/", generate_body(mode="self_instruct", topic=0, instructions=None), "topic"),
        ("/api/v1/generation-jobs/", generate_body(concurrency="2"), "concurrency"),
        ("/api/v1/datasets/", {"name": 7, "rows": INSTRUCTION_ROWS}, "name"),
        ("/api/v1/runs/", {"datasets": ["a"], "merge_full_model": 1}, "merge_full_model"),
        ("/api/v1/runs/", {"datasets": ["a"], "hyperparameters": {"lora_r": "8"}}, "hyperparameters.lora_r"),
    ],
)
def test_api_v1_and_openai_bodies_refuse_a_wrong_json_type(api, url, body, field):
    response = api.post(url, body, format="json")
    body = assert_error_body(response, 400, "INVALID_ARGUMENT")
    assert field.split(".")[-1] in body["message"] + str(body["extra"]), body
    assert not (Dataset.objects.exists() or GenerationJob.objects.exists() or Run.objects.exists())


@pytest.mark.django_db
def test_openai_bodies_refuse_a_wrong_json_type_in_openais_error(api):
    response = api.post("/v1/fine_tuning/jobs", {"training_file": 0, "model": "m"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "training_file"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/generate_data", {"base_url": "http://127.0.0.1:9/v1", "model": "m", "skip_tls_verify": 0}, "skip_tls_verify"),
        ("/generate_data", {"base_url": "http://127.0.0.1:9/v1", "model": "m", "num_samples": "5"}, "num_samples"),
        ("/finetune", {"selected_files": ["a.jsonl"], "num_epochs": "1"}, "num_epochs"),
        ("/compare", {"prompt": 5, "base_url": "http://127.0.0.1:9", "base_model": "b", "ft_model": "f"}, "prompt"),
    ],
)
def test_old_routes_refuse_a_wrong_json_type_in_the_old_envelope(api, url, body, field):
    # The old page sends JSON numbers and booleans (parseInt, parseFloat, checkbox.checked); the old
    # app's bool("false") was True, so a string is refused rather than guessed at.
    response = api.post(url, body, format="json")
    assert response.status_code == 400, response.content[:300]
    answer = response.json()
    assert answer["status"] == "error" and field in answer["message"], answer
    assert not (Dataset.objects.exists() or GenerationJob.objects.exists() or Run.objects.exists())


@pytest.mark.django_db
def test_multipart_fields_are_still_strings(api, data_root):
    # A form can only send strings: the upload's name parses as before.
    file = SimpleUploadedFile("rows.jsonl", jsonl(INSTRUCTION_ROWS), content_type="application/jsonl")
    response = api.post("/api/v1/datasets/", {"name": "typed", "file": file}, format="multipart")
    assert response.status_code == 201, response.content[:300]
    assert response.json()["name"] == "typed"
