"""Generation strategies, quality filters and curate jobs through the control plane: REST
(over the real datagen service), the token kept out of the DB, the 400s, the admin pages."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.urls import reverse

from control_plane.datasets import services
from control_plane.datasets.models import Dataset, GenerationJob
from control_plane.runs.models import Adapter
from tests.control_plane.factories import GenerationJobFactory
from tests.control_plane.helpers import assert_error_body, follow_to_end, generate_body, jsonl
from tests.control_plane.test_services import database_dump
from tests.support.fake_openai import FakeOpenAI, schema_name

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/generation-jobs/"
JUDGE_TOKEN = "judge-canary-5d4c3b2a1f"
EVAL_QUESTION = "What is the boiling point of water at sea level in degrees Celsius exactly?"
SOURCE_ROWS = [
    {
        "instruction": "Explain how the DNS system resolves a domain name to an address.",
        "output": "Via resolvers.",
    },
    {
        "instruction": "Explain how the DNS system resolves a domain name into an address.",
        "output": "Recursively.",
    },
    {"instruction": "Write a haiku about autumn leaves.", "output": "Red leaves drift down."},
    {
        "instruction": "Write a haiku about autumn leaves.",
        "output": "Red leaves drift down.",
    },  # exact duplicate
    {"instruction": EVAL_QUESTION, "output": "100."},  # in the eval set
    {"instruction": "Give a terrible answer to this question about tides.", "output": "Tides are cheese."},
    {"instruction": "Name three primary colours of paint.", "output": "Red, yellow and blue."},
    {"instruction": "Tell me something the judge cannot grade.", "output": "Something."},
]


def _instruction(body: dict) -> str:
    found = re.search(r"<instruction>\n(.*?)\n</instruction>", body["messages"][0]["content"], re.S)
    return found.group(1) if found else ""


def judge_reply(body: dict) -> str | None:
    """The fake judge: low scores for the tides row, garbage for the ungradable one, else good."""
    if schema_name(body) != "judgement":
        return None
    instruction = _instruction(body)
    if "cannot grade" in instruction:
        return "I would rather not say."
    score = 1 if "tides" in instruction else 5
    names = [
        name for name in body["response_format"]["json_schema"]["schema"]["properties"] if name != "reason"
    ]
    return json.dumps({"reason": f"scored {score}", **{name: score for name in names}})


@pytest.fixture
def judge():
    with FakeOpenAI(respond=judge_reply) as fake:
        yield fake


def judge_filter(fake: FakeOpenAI, **overrides) -> dict:
    return {
        "base_url": fake.base_url,
        "model": fake.model,
        "token": JUDGE_TOKEN,
        "concurrency": 2,
        **overrides,
    }


def upload(api, name: str, rows) -> dict:
    response = api.post("/api/v1/datasets/", {"name": name, "rows": rows}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


# --- over the real datagen service ---------------------------------------------------------------


def test_curate_makes_a_child_version_with_the_rows_that_pass_and_the_report(
    api, datagen, judge, data_root, caplog
):
    caplog.set_level(logging.DEBUG)
    upload(api, "support", SOURCE_ROWS)
    upload(api, "evalset", [{"instruction": EVAL_QUESTION, "output": "100 degrees."}])
    filters = {
        "near_dup": {"threshold": 0.7},
        "decontam": {"eval_datasets": ["evalset"]},
        "judge": judge_filter(
            judge, rubric=[{"name": "accuracy", "description": "Is it right?"}], min_score=3
        ),
    }
    response = api.post("/api/v1/datasets/support/curate/", {"filters": filters}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["dataset"] == "support.v2" and body["target_rows"] == len(SOURCE_ROWS)
    assert JUDGE_TOKEN not in response.content.decode()

    job = follow_to_end(body["job_id"])
    assert job.state == "succeeded", job.error
    kept = [SOURCE_ROWS[i] for i in (0, 2, 6, 7)]  # the ungradable row is kept, unjudged
    child = Dataset.objects.get(name="support.v2")
    assert (child.status, child.rows, child.family, child.version, child.parent.name) == (
        "ready",
        4,
        "support",
        2,
        "support",
    )
    rows = [json.loads(line) for line in (data_root / child.path).read_text().splitlines()]
    assert sorted(rows, key=SOURCE_ROWS.index) == kept  # in the order the judge finished them
    assert child.operation["op"] == "curate"
    assert child.operation["params"]["filters"]["judge"]["rubric"] == [
        {"name": "accuracy", "description": "Is it right?"}
    ]
    assert child.params["source"] == "support" and "token" not in child.params["filters"]["judge"]

    report = api.get(f"{JOBS}{job.job_id}/").json()
    assert report["report"] == {
        "dropped_by": {"contaminated": 1, "duplicate": 1, "judge": 1, "near_duplicate": 1},
        "near_dup_clusters": 1,
        "judged": 4,
        "judge_failures": 1,
    }
    assert report["judge_prompt_tokens"] > 0 and report["judge_completion_tokens"] > 0
    assert report["prompt_tokens"] == 0  # no teacher
    assert report["metadata_path"] == "datasets/support.v2.meta.jsonl"
    metadata = [json.loads(line) for line in (data_root / report["metadata_path"]).read_text().splitlines()]
    verdicts = {row["instruction"]: meta["judge"] for row, meta in zip(rows, metadata, strict=True)}
    assert verdicts[SOURCE_ROWS[0]["instruction"]]["scores"] == {"accuracy": 5}
    assert "error" in verdicts[SOURCE_ROWS[7]["instruction"]]

    events = api.get(f"{JOBS}{job.job_id}/events/").json()["events"]
    checks = sorted(e["payload"]["check"] for e in events if e["type"] == "row_rejected")
    assert checks == ["contaminated", "duplicate", "judge", "near_duplicate"]
    failed = [e["payload"] for e in events if e["type"] == "judge_failed"]
    assert len(failed) == 1 and "cannot grade" in failed[0]["instruction"] and failed[0]["reason"]
    written = next(e["payload"] for e in events if e["type"] == "dataset_written")
    assert written["report"] == report["report"] and written["metadata_path"] == report["metadata_path"]

    # The judge's token was used, and stored nowhere.
    assert {r.headers.get("Authorization") for r in judge.chat_requests()} == {f"Bearer {JUDGE_TOKEN}"}
    assert JUDGE_TOKEN not in database_dump()
    assert JUDGE_TOKEN not in caplog.text and JUDGE_TOKEN not in datagen.log_text()


def test_generate_with_filters_and_strategy_passes_them_on_and_resume_takes_the_judge_token(
    api, datagen, data_root
):
    held_out = data_root / "adapters" / "tiny-v1" / "eval.jsonl"  # a run's held-out split, as exported
    held_out.parent.mkdir(parents=True)
    held_out.write_bytes(
        jsonl([{"instruction": "Compare UDP and TCP for video streaming today.", "output": "-"}])
    )
    Adapter.objects.create(
        name="tiny-v1",
        path="adapters/tiny-v1",
        base_model="tiny-phi3",
        weights_sha256="0" * 64,
        manifest={"eval_split": {"file": "eval.jsonl", "rows": 1}},
    )
    with FakeOpenAI(respond=judge_reply, latency_s=0.05) as fake:
        instructions = [
            SOURCE_ROWS[0]["instruction"],
            SOURCE_ROWS[1]["instruction"],
            "Describe the TCP handshake.",
            "What does TLS protect against?",
            "Compare UDP and TCP for video streaming.",
        ]
        body = generate_body(
            fake,
            instructions=instructions,
            concurrency=1,
            filters={
                "near_dup": {},
                "decontam": {"eval_adapters": ["tiny-v1"], "ngram": 3, "threshold": 1.0},
                "judge": judge_filter(fake, min_score=2.5),
            },
        )
        response = api.post(JOBS, body, format="json")
        assert response.status_code == 202, response.json()
        job_id = response.json()["job_id"]
        assert api.post(f"{JOBS}{job_id}/cancel/").status_code == 202
        assert follow_to_end(job_id).state == "cancelled"

        sent_before = len(fake.chat_requests())
        resumed = api.post(
            f"{JOBS}{job_id}/resume/",
            {"token": "endpoint-token-123456", "judge_token": JUDGE_TOKEN},
            format="json",
        )
        assert resumed.status_code == 202, resumed.json()
        job = follow_to_end(job_id)

    assert job.state == "succeeded", job.error
    requests = fake.chat_requests()
    judged = [r for r in requests if schema_name(r.body) == "judgement"]
    # (A request cut off by the cancel arrives without a body.)
    answered = [r for r in requests if schema_name(r.body) != "judgement" and r.body]
    assert judged and {r.headers["Authorization"] for r in judged} == {f"Bearer {JUDGE_TOKEN}"}
    assert {r.headers["Authorization"] for r in answered} == {"Bearer endpoint-token-123456"}
    assert any(schema_name(r.body) == "judgement" for r in requests[sent_before:])  # after the resume too
    # The second DNS question is a near duplicate, the UDP one in the adapter's eval split: neither was answered.
    assert {_user_text(r) for r in answered} == {instructions[0], instructions[2], instructions[3]}
    assert job.report["dropped_by"] == {"contaminated": 1, "near_duplicate": 1}
    assert job.kept == 3 and job.judge_prompt_tokens > 0

    dataset = job.dataset
    assert dataset.params["filters"] == {
        "near_dup": {"enabled": True},
        "decontam": {"eval_adapters": ["tiny-v1"], "ngram": 3, "threshold": 1.0},
        "judge": {"base_url": fake.base_url, "model": fake.model, "concurrency": 2, "min_score": 2.5},
    }
    assert JUDGE_TOKEN not in database_dump()


def _user_text(request) -> str:
    return str(request.body["messages"][-1]["content"])


# --- refused before any call ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"filters": {"near_dup": {"threshold": 0.3}}}, "filters.near_dup.threshold", "greater than 0.5"),
        ({"filters": {"decontam": {"eval_datasets": ["nope"]}}}, "filters.decontam.eval_datasets", "'nope'"),
        ({"filters": {"decontam": {"eval_adapters": ["nope"]}}}, "filters.decontam.eval_adapters", "'nope'"),
        (
            {"filters": {"decontam": {"eval_datasets": ["nope@2"]}}},
            "filters.decontam.eval_datasets",
            "'nope'",
        ),
        ({"filters": {"decontam": {}}}, "filters.decontam.eval_datasets", "eval_datasets or eval_adapters"),
        (
            {"filters": {"decontam": {"eval_datasets": ["x"], "ngram": 2}}},
            "filters.decontam.ngram",
            "3 to 50",
        ),
        (
            {"filters": {"judge": {"base_url": "not a url", "model": "m"}}},
            "filters.judge.base_url",
            "http(s) URL",
        ),
        ({"filters": {"judge": {"base_url": "http://j:1/v1", "model": ""}}}, "filters.judge.model", "blank"),
        (
            {"filters": {"judge": {"base_url": "http://j:1/v1", "model": "m", "min_score": 7}}},
            "filters.judge.min_score",
            "1 to 5",
        ),
        (
            {
                "filters": {
                    "judge": {"base_url": "http://j:1/v1", "model": "m", "rubric": [{"name": "Bad Name"}]}
                }
            },
            "filters.judge.rubric[0].name",
            "lower-case",
        ),
        ({"evol_instruct": {"rounds": 2}}, "evol_instruct", "only used with mode evol_instruct"),
        (
            {
                "mode": "evol_instruct",
                "instructions": [],
                "topic": "x",
                "num_rows": 3,
                "evol_instruct": {"rounds": 9},
            },
            "evol_instruct.rounds",
            "less than or equal to 5",
        ),
        ({"mode": "topic_tree", "instructions": [], "num_rows": 3}, "topic", "topic"),
        (
            {
                "mode": "topic_tree",
                "instructions": [],
                "topic": "x",
                "num_rows": 3,
                "topic_tree": {"breadth": 11},
            },
            "topic_tree.breadth",
            "less than or equal to 10",
        ),
    ],
)
def test_generate_refuses_bad_strategies_and_filters_naming_the_field(api, overrides, field, words):
    # An evaluation set that does not exist is 404 (what the request names is missing), not 400.
    status, code = (404, "NOT_FOUND") if words == "'nope'" else (400, "INVALID_ARGUMENT")
    error = assert_error_body(api.post(JOBS, generate_body(**overrides), format="json"), status, code)
    assert error["extra"]["field"] == field, error
    assert words in error["message"], error
    assert not Dataset.objects.exists() and not GenerationJob.objects.exists()


def test_curate_refuses_unknown_sources_bad_filters_and_answers_503_with_datagen_down(api, cp_settings):
    curate = lambda name, body: api.post(f"/api/v1/datasets/{name}/curate/", body, format="json")  # noqa: E731
    error = assert_error_body(curate("missing", {}), 404, "NOT_FOUND")
    assert error["extra"]["field"] == "parent" and "missing" in error["message"]
    upload(api, "faq", [{"instruction": "Q?", "output": "A."}])
    error = assert_error_body(curate("faq", {"version": 3}), 404, "NOT_FOUND")
    assert error["extra"]["field"] == "parent" and "no version 3" in error["message"]
    error = assert_error_body(
        curate("faq", {"filters": {"near_dup": {"threshold": 1.5}}}), 400, "INVALID_ARGUMENT"
    )
    assert error["extra"]["field"] == "filters.near_dup.threshold"
    error = assert_error_body(curate("faq", {"name": "../x"}), 400, "INVALID_ARGUMENT")
    assert error["extra"]["field"] == "name"
    error = assert_error_body(curate("faq", {"name": "faq"}), 409, "ALREADY_EXISTS")
    error = assert_error_body(
        curate(
            "faq", {"filters": {"judge": {"base_url": "http://j:1/v1", "model": "m", "token": JUDGE_TOKEN}}}
        ),
        503,
        "UNAVAILABLE",
    )
    assert cp_settings.SYNTHTUNE_DATAGEN_ADDR in error["message"]
    assert Dataset.objects.count() == 1 and not GenerationJob.objects.exists()


def test_events_carry_the_judge_usage_report_and_judge_failures(data_root):
    from tests.control_plane.test_services import event

    job = GenerationJobFactory(state="running", target_rows=3)
    report = {"dropped_by": {"judge": 1}, "near_dup_clusters": 0, "judged": 2, "judge_failures": 1}
    record = lambda e: services.generation_event_record(job_id=job.job_id, event=e)  # noqa: E731
    record(
        event(
            1,
            "progress",
            kept=1,
            dropped=1,
            failed=0,
            target_rows=3,
            prompt_tokens=5,
            completion_tokens=6,
            judge_prompt_tokens=70,
            judge_completion_tokens=8,
            report=report,
        )
    )
    record(event(2, "judge_failed", index=2, instruction="Q?", reason="no scores"))
    job.refresh_from_db()
    assert (job.judge_prompt_tokens, job.judge_completion_tokens, job.report) == (70, 8, report)
    assert [e.type for e in job.events.all()] == ["progress", "judge_failed"]


# --- admin ----------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_admin_generate_and_curate_forms_offer_the_strategies_and_filters(admin_client, staff):
    services.dataset_upload(owner=staff, name="evalset", data=jsonl([{"instruction": "Q?", "output": "A."}]))
    page = admin_client.get("/admin/datasets/dataset/generate/").content.decode()
    for needle in (
        'value="evol_instruct"',
        'value="topic_tree"',
        'name="evol_rounds"',
        'name="tree_depth"',
        'name="near_dup"',
        'name="near_dup_threshold"',
        'type="password" name="judge_token"',
        'name="judge_min_score"',
        '<option value="evalset">evalset</option>',
        "LLM judge",
    ):
        assert needle in page, needle
    dataset = Dataset.objects.get(name="evalset")
    change = admin_client.get(reverse("admin:datasets_dataset_change", args=[dataset.pk])).content.decode()
    curate_url = reverse("admin:datasets_dataset_curate", args=[dataset.pk])
    assert f'href="{curate_url}"' in change and "Curate into a new version" in change
    page = admin_client.get(curate_url).content.decode()
    assert 'id="curate-form"' in page and 'name="decontam_datasets"' in page and "Curate evalset" in page
    response = admin_client.post(
        "/admin/datasets/dataset/", {"action": "curate", "_selected_action": [dataset.pk]}
    )
    assert response.status_code == 302 and response["Location"] == curate_url


def test_admin_forms_show_filter_errors_on_their_fields_and_never_echo_the_judge_token(
    admin_client, staff, cp_settings
):
    form = {
        "name": "gen",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "m",
        "mode": "from_instructions",
        "instructions": "Q?",
        "judge_base_url": "not a url",
        "judge_model": "m",
        "judge_token": JUDGE_TOKEN,
    }
    page = admin_client.post("/admin/datasets/dataset/generate/", form).content.decode()
    assert "filters.judge.base_url must be an http(s) URL" in page and JUDGE_TOKEN not in page
    form.update(
        judge_base_url="http://127.0.0.1:9/v1", mode="topic_tree", topic="Space", num_rows="3", tree_depth="2"
    )
    page = admin_client.post("/admin/datasets/dataset/generate/", form).content.decode()
    assert cp_settings.SYNTHTUNE_DATAGEN_ADDR in page  # valid: it got as far as the (stopped) service

    parent = services.dataset_upload(
        owner=staff, name="faq", data=jsonl([{"instruction": "Q?", "output": "A."}])
    )
    curate_url = reverse("admin:datasets_dataset_curate", args=[parent.pk])
    page = admin_client.post(curate_url, {"near_dup": "on", "near_dup_threshold": "0.2"}).content.decode()
    assert "greater than or equal to 0.5" in page
    page = admin_client.post(curate_url, {"near_dup": "on", "judge_token": JUDGE_TOKEN}).content.decode()
    assert "filters.judge.base_url" in page and JUDGE_TOKEN not in page
    page = admin_client.post(curate_url, {"near_dup": "on"}).content.decode()
    assert cp_settings.SYNTHTUNE_DATAGEN_ADDR in page
    assert list(Dataset.objects.values_list("name", flat=True)) == ["faq"]


def test_admin_job_page_shows_the_report_and_judge_tokens(admin_client):
    job = GenerationJobFactory(
        state="succeeded",
        judge_prompt_tokens=1234,
        judge_completion_tokens=56,
        metadata_path="datasets/x.meta.jsonl",
        report={
            "dropped_by": {"near_duplicate": 3, "judge": 2},
            "near_dup_clusters": 2,
            "judged": 9,
            "judge_failures": 1,
        },
    )
    page = admin_client.get(reverse("admin:datasets_generationjob_change", args=[job.pk])).content.decode()
    assert 'id="job-report"' in page and "<td>near_duplicate</td><td>3</td>" in page
    assert 'id="report-clusters">2<' in page and 'id="report-judged">9<' in page
    assert 'id="report-judge-failures">1<' in page
    assert "Judge: 1234 prompt + 56 completion tokens" in page and "datasets/x.meta.jsonl" in page
