"""Generation jobs end to end over real gRPC (a real service process) against the scriptable fake."""

from __future__ import annotations

import json

import pytest

from synthtune.datagen.v1 import datagen_pb2 as pb
from tests.datagen_svc.conftest import assert_published, request, rows_of
from tests.support.fake_openai import Hang, Malformed, Reply, Status

FIXED, SELF, LIST = (
    pb.GENERATION_MODE_FIXED,
    pb.GENERATION_MODE_SELF_INSTRUCT,
    pb.GENERATION_MODE_FROM_INSTRUCTIONS,
)


def kinds(events) -> list[str]:
    return [e.WhichOneof("kind") for e in events]


def rejected(events) -> list[tuple[str, str]]:
    return [
        (e.row_rejected.kind, e.row_rejected.reason) for e in events if e.WhichOneof("kind") == "row_rejected"
    ]


def answers(fake) -> list:
    return [r for r in fake.chat_requests() if not r.is_planning]


# --- the three modes ---------------------------------------------------------------------------


def test_fixed_mode_writes_every_row_with_the_prompt_and_system(datagen, fake):
    job = datagen.start(
        request(
            fake.base_url,
            "fixed-basic",
            num_rows=6,
            system_prompt="Be brief.",
            sampling=pb.Sampling(temperature=0.7, max_tokens=32),
        )
    )
    assert job.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING) and job.target_rows == 6
    events = datagen.events(job.job_id)
    job = datagen.get(job.job_id)

    rows = assert_published(datagen, job, 6)
    assert all(
        r
        == {
            "instruction": "Write a short greeting.",
            "system": "Be brief.",
            "output": "Answer to: Write a short greeting.",
        }
        for r in rows
    )
    assert (job.usage.prompt_tokens, job.usage.completion_tokens) == (6 * 7, 6 * 5)
    assert kinds(events)[-2:] == ["dataset_written", "state_changed"]
    assert events[-1].state_changed.state == pb.JOB_STATE_SUCCEEDED
    assert events[-2].dataset_written.sha256 == job.sha256 and events[-2].dataset_written.counts.kept == 6
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    sent = fake.chat_requests()[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["temperature"] == 0.7 and sent["max_tokens"] == 32 and "top_p" not in sent
    params = json.loads(job.params_json)
    assert params["mode"] == "fixed" and params["num_rows"] == 6 and "token" not in params["endpoint"]


def test_self_instruct_asks_for_json_instructions_and_answers_each(datagen, fake):
    job = datagen.start(
        request(
            fake.base_url,
            "self-basic",
            mode=SELF,
            num_rows=7,
            topic="knots",
            seed_examples=["Tie a bowline."],
        )
    )
    job = datagen.wait(job.job_id)

    rows = assert_published(datagen, job, 7)
    assert len({r["instruction"] for r in rows}) == 7
    planning = [r for r in fake.chat_requests() if r.is_planning]
    assert planning and planning[0].body["response_format"]["type"] == "json_schema"
    prompt = planning[0].body["messages"][-1]["content"]
    assert "knots" in prompt and "Tie a bowline." in prompt
    # tokens of the planning calls count too
    assert job.usage.prompt_tokens == 7 * len(fake.chat_requests())


def test_self_instruct_falls_back_to_text_when_response_format_is_rejected(datagen, fake):
    fake.reject_response_format = True
    job = datagen.wait(datagen.start(request(fake.base_url, "self-fallback", mode=SELF, num_rows=4)).job_id)

    assert_published(datagen, job, 4)
    planning = [r for r in fake.chat_requests() if r.is_planning]
    assert "response_format" in planning[0].body  # tried once, refused with 400
    assert all("response_format" not in r.body for r in planning[1:]) and len(planning) >= 2


def test_self_instruct_drops_repeated_instructions_with_a_reason(datagen, fake):
    # concurrency 1 makes the order fixed: plan, answer, answer, plan, (duplicate: no call), answer, plan...
    fake.script(
        Reply(json.dumps({"instructions": ["Fold a towel", "Sort the socks"]})),
        Reply(),
        Reply(),
        Reply(json.dumps({"instructions": ["fold a  TOWEL", "Wash a cup"]})),
    )
    job = datagen.start(request(fake.base_url, "self-dupes", mode=SELF, num_rows=4, concurrency=1))
    events = datagen.events(job.job_id)
    job = datagen.get(job.job_id)

    rows = assert_published(datagen, job, 4)
    assert [r["instruction"] for r in rows[:3]] == ["Fold a towel", "Sort the socks", "Wash a cup"]
    assert rejected(events) == [("dropped", "duplicate instruction")] and job.counts.dropped == 1


def test_from_instructions_answers_each_once_in_order(datagen, fake):
    instructions = ["Name a color.", "Name a fruit.", "name a  COLOR.", "Name a tree.", "Name a bird."]
    job = datagen.start(
        request(fake.base_url, "list-basic", mode=LIST, num_rows=5, instructions=instructions)
    )
    events = datagen.events(job.job_id)
    job = datagen.get(job.job_id)

    # The list ran out after the duplicate was dropped: 4 of 5 is all it can give, and that is success.
    rows = assert_published(datagen, job, 4)
    assert sorted(r["instruction"] for r in rows) == sorted(set(instructions) - {"name a  COLOR."})
    assert rejected(events) == [("dropped", "duplicate instruction")]
    assert len(answers(fake)) == 4


# --- faults: recovered by retries -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [Status(429, retry_after="0.2"), Status(500), Status(503), Hang(), Malformed()],
    ids=["429-retry-after", "500", "503", "hung-socket", "malformed-json"],
)
def test_transient_faults_complete_through_retries(datagen, fake, fault):
    fake.script(fault, fault)
    job = datagen.start(
        request(
            fake.base_url,
            f"retry-{type(fault).__name__}-{getattr(fault, 'code', '')}",
            num_rows=3,
            concurrency=1,
            timeout_s=0.4,
        )
    )
    job = datagen.wait(job.job_id)

    assert_published(datagen, job, 3)
    assert (job.counts.dropped, job.counts.failed) == (0, 0)
    assert len(fake.chat_requests()) == 5


def test_empty_outputs_are_dropped_with_a_reason_and_replaced(datagen, fake):
    fake.script(Reply(""), Reply("  \n\t"), Reply(None))
    job = datagen.start(request(fake.base_url, "empty-outputs", num_rows=3, concurrency=1))
    events = datagen.events(job.job_id)
    job = datagen.get(job.job_id)

    assert_published(datagen, job, 3)
    assert rejected(events) == [("dropped", "empty output"), ("dropped", "whitespace-only output")]
    assert (job.counts.kept, job.counts.dropped, job.counts.failed) == (3, 2, 0)


# --- faults: the job fails with a clear reason, keeps its rows, and resumes ------------------------


@pytest.mark.parametrize(
    "fault, reason",
    [
        (Status(500, message="boom"), "HTTP 500: boom"),
        (Hang(), "timed out after 0.3s"),
        (Malformed(), "malformed completion"),
    ],
    ids=["500", "hung-socket", "malformed-json"],
)
def test_a_failing_endpoint_fails_the_job_keeping_rows_then_resume_completes(datagen, fake, fault, reason):
    fake.script(Reply("first"), Reply("second"))
    fake.default = fault
    name = f"down-{type(fault).__name__}"
    job = datagen.start(request(fake.base_url, name, num_rows=6, concurrency=5, timeout_s=0.3, max_retries=1))
    job = datagen.wait(job.job_id)

    assert job.state == pb.JOB_STATE_FAILED
    assert "kept failing" in job.error and reason in job.error and "gave up after 2 attempts" in job.error
    assert job.counts.kept == 2 and job.counts.failed >= 5
    kept = rows_of(datagen.partial(job))
    assert sorted(r["output"] for r in kept) == ["first", "second"]
    assert not datagen.dataset(job).exists()

    fake.wait_quiet()  # the cancelled workers' last requests may still be on their way in
    fake.default = Reply()
    calls_before = len(fake.chat_requests())
    job = datagen.resume(job.job_id)
    assert job.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING) and job.error == ""
    job = datagen.wait(job.job_id)

    rows = assert_published(datagen, job, 6)
    assert rows[:2] == kept  # the rows from before are the file's first rows, untouched
    assert len(fake.chat_requests()) - calls_before == 4  # nothing regenerated


def test_a_rejected_token_fails_at_once_without_retries(datagen, fake):
    fake.default = Status(401, message="Incorrect API key")
    job = datagen.wait(datagen.start(request(fake.base_url, "bad-token", num_rows=3, concurrency=1)).job_id)

    assert job.state == pb.JOB_STATE_FAILED
    assert job.error == "endpoint answered HTTP 401: Incorrect API key (check endpoint.token)"
    assert len(fake.chat_requests()) == 1


# --- cancel -------------------------------------------------------------------------------------


def test_cancel_keeps_the_rows_and_resume_finishes_without_regenerating(datagen, fake):
    fake.latency_s = 0.05
    job = datagen.start(request(fake.base_url, "cancel-me", num_rows=30, concurrency=2))
    datagen.wait_for(job.job_id, lambda j: j.counts.kept >= 4)

    job = datagen.cancel(job.job_id)
    assert job.state == pb.JOB_STATE_CANCELLED and job.error == "cancelled by request"
    assert datagen.events(job.job_id)[-1].state_changed.state == pb.JOB_STATE_CANCELLED  # stream closes
    kept = rows_of(datagen.partial(job))
    assert len(kept) == job.counts.kept >= 4 and not datagen.dataset(job).exists()
    assert datagen.cancel(job.job_id).state == pb.JOB_STATE_CANCELLED  # idempotent

    fake.latency_s = 0.0
    fake.wait_quiet()  # a cancelled request may still be on its way in
    calls_before = len(fake.chat_requests())
    job = datagen.wait(datagen.resume(job.job_id).job_id)
    rows = assert_published(datagen, job, 30)
    assert rows[: len(kept)] == kept
    assert len(fake.chat_requests()) - calls_before == 30 - len(kept)


# --- watch --------------------------------------------------------------------------------------


def test_watch_resumed_with_after_seq_loses_nothing(datagen, fake):
    fake.latency_s = 0.02
    fake.script(*[Reply(""), Reply()] * 8)  # every other answer empty: a row_rejected event each
    job = datagen.start(request(fake.base_url, "watch-resume", num_rows=8, concurrency=1))

    stream = datagen.stub.WatchGeneration(pb.WatchGenerationRequest(job_id=job.job_id), timeout=30)
    first = [next(stream) for _ in range(3)]
    stream.cancel()  # the client drops mid-job ...
    rest = datagen.events(job.job_id, after_seq=first[-1].seq)  # ... and comes back

    everything = datagen.events(job.job_id)
    assert first + rest == everything
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
    assert rest and rest[-1].state_changed.state == pb.JOB_STATE_SUCCEEDED
    assert len(rejected(everything)) == 8
    assert datagen.events(job.job_id, after_seq=everything[-1].seq) == []  # finished: closes at once


def test_list_shows_jobs_newest_first_without_tokens(datagen, fake):
    one = datagen.wait(
        datagen.start(request(fake.base_url, "list-one", num_rows=1, token="list-token-abcdef")).job_id
    )
    two = datagen.wait(
        datagen.start(request(fake.base_url, "list-two", num_rows=1, token="list-token-abcdef")).job_id
    )
    jobs = datagen.stub.ListGenerations(pb.ListGenerationsRequest(), timeout=10).jobs
    ids = [j.job_id for j in jobs]
    assert ids.index(two.job_id) < ids.index(one.job_id)
    assert all("list-token" not in j.params_json for j in jobs)


def test_from_instructions_failures_fail_the_job_and_resume_asks_only_for_the_rest(datagen, fake):
    instructions = [f"Spell the word {w}." for w in ("cat", "dog", "owl", "elk", "yak", "emu")]
    fake.script(Reply("c-a-t"), Reply("d-o-g"))
    fake.default = Status(500)
    job = datagen.start(
        request(
            fake.base_url,
            "list-resume",
            mode=LIST,
            num_rows=6,
            instructions=instructions,
            concurrency=1,
            max_retries=0,
        )
    )
    job = datagen.wait(job.job_id)

    assert job.state == pb.JOB_STATE_FAILED
    assert "ran out with 2 of 6 rows: 4 failed" in job.error and "Resume" in job.error
    fake.default = Reply()
    calls_before = len(fake.chat_requests())
    job = datagen.wait(datagen.resume(job.job_id).job_id)

    rows = assert_published(datagen, job, 6)
    assert [r["output"] for r in rows[:2]] == ["c-a-t", "d-o-g"]
    asked_again = [r.body["messages"][-1]["content"] for r in fake.chat_requests()[calls_before:]]
    assert asked_again == instructions[2:]
