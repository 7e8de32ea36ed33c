"""Pure domain pieces: instruction parsing, quality checks, Retry-After, crash-safe JSONL, specs."""

from __future__ import annotations

import json

import pytest

from datagen_svc.openai_client import parse_retry_after
from datagen_svc.planning import instructions_schema, parse_instructions
from datagen_svc.quality import Deduper, make_row, normalise_instruction, output_problem
from datagen_svc.servicer import params_json
from datagen_svc.spec import Endpoint, GenerationSpec, Limits, Mode, Sampling, validate_spec
from synthtune import jsonl
from synthtune.errors import InvalidArgument


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"instructions": ["Bake bread", "Boil an egg"]}', ["Bake bread", "Boil an egg"]),
        ('Sure!\n```json\n{"instructions": ["A", "B"]}\n```\nEnjoy.', ["A", "B"]),
        ('["A", {"instruction": "B"}, 3, ""]', ["A", "B"]),
        ('Here you go: {"tasks": ["x"]} thanks', ["x"]),
        # cut off by max_tokens: the closed strings survive, the torn one does not
        ('{"instructions": ["First", "Sec\\"ond\\"", "Thi', ["First", 'Sec"ond"']),
        (
            '1. Plan a picnic\n2) Fold a shirt\n- Iron a "tie"\nnot a list line',
            ["Plan a picnic", "Fold a shirt", 'Iron a "tie"'],
        ),
        # raw control characters (xgrammar lets them through): parsed, then blanked
        ('{"instructions": ["tab\there\u0001x"]}', ["tab\there x"]),
        ('{"instructions": ["Same", " same ", "SAME"]}', ["Same"]),
        ("complete gibberish without structure", []),
        ("", []),
    ],
)
def test_parse_instructions_is_robust(reply, expected):
    assert parse_instructions(reply) == expected


def test_instructions_schema_bounds_the_list():
    schema = instructions_schema(4)["json_schema"]["schema"]
    items = schema["properties"]["instructions"]
    assert items["maxItems"] == 4 and items["items"]["minLength"] == 1
    assert schema["required"] == ["instructions"] and schema["additionalProperties"] is False


def test_dedup_compares_normalised_instructions():
    deduper = Deduper()
    assert deduper.admit("Write a  Poem\n")
    assert not deduper.admit("write a poem")
    assert not deduper.admit("ＷＲＩＴＥ A POEM")  # full-width letters fold under NFKC
    assert deduper.admit("Write a poem!")  # punctuation matters: not an exact duplicate
    deduper.forget("write a poem")
    assert deduper.admit("Write a poem")
    assert normalise_instruction("  A\tB  ") == "a b"


def test_output_checks_and_rows():
    assert output_problem(None) == "empty output"
    assert output_problem("") == "empty output"
    assert output_problem(" \n\t") == "whitespace-only output"
    assert output_problem("ok") is None
    assert make_row(instruction=" Hi ", output=" Hello \n") == {"instruction": "Hi", "output": "Hello"}
    assert list(make_row(instruction="Hi", output="Yo", system="Be brief")) == [
        "instruction",
        "system",
        "output",
    ]
    with pytest.raises(ValueError):
        make_row(instruction="Hi", output="   ")


@pytest.mark.parametrize(
    "header, seconds",
    [
        ("0.2", 0.2),
        ("3", 3.0),
        ("-1", 0.0),
        ("soon", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),
    ],
)
def test_retry_after_parsing(header, seconds):
    now = 1445412480.0 - 10.0  # ten seconds before the date above
    assert parse_retry_after(header, now=now) == seconds


def test_jsonl_recover_cuts_a_torn_tail(tmp_path):
    path = tmp_path / "rows.jsonl.partial"
    good = [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in good) + '{"instruction": "e", "out')
    assert jsonl.recover(path) == good
    assert path.read_text().endswith('"d"}\n')  # the torn line is gone, so appends start clean
    appender = jsonl.Appender(path)
    appender.append({"instruction": "f", "output": "g"})
    appender.close()
    assert len(jsonl.recover(path)) == 3
    assert jsonl.recover(tmp_path / "missing") == []


def test_public_params_never_hold_the_token():
    spec = GenerationSpec(
        dataset_name="d",
        endpoint=Endpoint(base_url="http://h/v1", model="m", token="sk-canary-123456"),
        num_rows=1,
        mode=Mode.FIXED,
        prompt_template="p",
    )
    params = spec.public_params()
    assert "sk-canary" not in json.dumps(params) and "sk-canary" not in repr(spec)
    again = GenerationSpec.from_params(json.loads(json.dumps(params)), token="new-token")
    assert again.endpoint.token == "new-token" and again.mode is Mode.FIXED


def test_validate_spec_fills_documented_defaults():
    spec = validate_spec(
        GenerationSpec(
            dataset_name="d",
            endpoint=Endpoint(base_url="https://h:8443/v1/", model="m"),
            limits=Limits(),
            sampling=Sampling(),
            num_rows=3,
            mode=Mode.FIXED,
            prompt_template="p",
        ),
        max_rows=10,
        max_concurrency=4,
    )
    assert spec.endpoint.base_url == "https://h:8443/v1"
    assert (spec.endpoint.request_timeout_s, spec.endpoint.max_retries) == (60.0, 5)
    assert spec.limits.concurrency == 4  # the default (8) is capped by the service's maximum
    with pytest.raises(InvalidArgument) as info:
        validate_spec(spec.__class__(**{**spec.__dict__, "num_rows": 11}), max_rows=10, max_concurrency=4)
    assert info.value.field == "num_rows"


def test_params_json_cuts_long_instruction_lists():
    params = {"mode": "from_instructions", "instructions": [f"q{i}" for i in range(500)], "seed_examples": []}
    shown = json.loads(params_json(params))
    assert shown["instructions"] == [f"q{i}" for i in range(50)] and shown["instructions_count"] == 500
    assert "seed_examples_count" not in shown and params["instructions"][-1] == "q499"  # input untouched
