"""Quality filters as steps of real jobs (a real service process, the scriptable fake endpoint).

Near duplicates, decontamination and the judge inside a generation job; mode curate
(filters over an existing dataset) with its resume; the judge's faults; and the row
metadata file that carries provenance and verdicts beside the training rows.
"""

from __future__ import annotations

import json

import grpc
import pytest

from synthtune.datagen.v1 import datagen_pb2 as pb
from tests.datagen_svc.conftest import assert_published, request
from tests.support.fake_openai import Hang, Reply, Status, schema_name

LIST, CURATE = pb.GENERATION_MODE_FROM_INSTRUCTIONS, pb.GENERATION_MODE_CURATE


def metadata_of(datagen, job) -> list[dict]:
    assert job.metadata_path == job.dataset_path.removesuffix(".jsonl") + ".meta.jsonl"
    return [json.loads(line) for line in (datagen.data_root / job.metadata_path).read_text().splitlines()]


def rejected(events) -> list[pb.RowRejected]:
    return [e.row_rejected for e in events if e.WhichOneof("kind") == "row_rejected"]


def judge_reply(body: dict) -> str | None:
    """A judge that gives 1s to answers containing "bad" and 5s to the rest; None for other requests."""
    if schema_name(body) != "judgement":
        return None
    criteria = [k for k in body["response_format"]["json_schema"]["schema"]["properties"] if k != "reason"]
    bad = "bad" in body["messages"][-1]["content"].split("Response", 1)[-1].lower()
    return json.dumps({**{c: 1 if bad else 5 for c in criteria}, "reason": "poor" if bad else "fine"})


def judge_filter(fake_url: str, **fields) -> pb.JudgeFilter:
    fields.setdefault("limits", pb.Limits(concurrency=2))
    return pb.JudgeFilter(
        endpoint=pb.Endpoint(base_url=fake_url, model="judge-model", request_timeout_s=2, max_retries=1),
        **fields,
    )


def write_dataset(datagen, name: str, rows: list[dict]) -> str:
    relpath = f"datasets/{name}.jsonl"
    path = datagen.data_root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return relpath


# --- filters inside a generation job ----------------------------------------------------------


def test_a_generation_job_drops_near_duplicates_and_eval_overlaps_before_asking_for_answers(datagen, fake):
    eval_path = write_dataset(
        datagen, "filters-eval", [{"instruction": "What is the capital city of France and why is it famous?",
                                    "output": "Paris."}]
    )
    instructions = [
        "Explain how a bicycle gear system works for a beginner.",
        "Explain how a bicycle gear system works for beginners.",  # near duplicate of row 0
        "Tell me: what is the capital city of France and why is it famous?",  # in the eval set
        "Write a limerick about a sleepy cat.",
    ]
    filters = pb.Filters(
        near_dup=pb.NearDupFilter(enabled=True),
        decontam=pb.DecontamFilter(eval_paths=[eval_path]),
    )
    job = datagen.start(request(fake.base_url, "filters-gen", mode=LIST, num_rows=4, instructions=instructions,
                                filters=filters))
    events = datagen.events(job.job_id)
    job = datagen.get(job.job_id)

    rows = assert_published(datagen, job, 2)
    assert sorted(r["instruction"] for r in rows) == sorted([instructions[0], instructions[3]])
    drops = {r.index: r for r in rejected(events)}
    assert drops[1].check == "near_duplicate" and "row 0" in drops[1].reason and "Jaccard" in drops[1].reason
    assert drops[2].check == "contaminated" and eval_path in drops[2].reason
    assert dict(job.report.dropped_by) == {"near_duplicate": 1, "contaminated": 1}
    assert job.report.near_dup_clusters == 1
    # Dropped on the instruction: the teacher was asked only for the two kept rows.
    assert len(fake.chat_requests()) == 2
    # Rows are written as they are answered; each metadata line stays beside its row.
    assert [m["index"] for m in metadata_of(datagen, job)] == [instructions.index(r["instruction"]) for r in rows]
    assert all(m["strategy"] == "from_instructions" for m in metadata_of(datagen, job))


def test_the_judge_scores_each_row_drops_low_ones_and_its_verdicts_go_to_the_metadata(datagen, fake):
    fake.respond = judge_reply
    fake.answer = lambda instruction: "a bad answer" if "2" in instruction else "a good answer"
    job = datagen.start(request(fake.base_url, "filters-judge", mode=LIST, num_rows=4,
                                filters=pb.Filters(judge=judge_filter(fake.base_url))))
    events = datagen.events(job.job_id)
    job = datagen.get(job.job_id)

    rows = assert_published(datagen, job, 3)
    assert "Question 2?" not in [r["instruction"] for r in rows]
    assert all(set(r) == {"instruction", "output"} for r in rows)  # the training rows stay as they were
    (drop,) = rejected(events)
    assert drop.check == "judge" and "below 3" in drop.reason and "poor" in drop.reason
    verdicts = [m["judge"] for m in metadata_of(datagen, job)]
    assert all(v["mean"] == 5 and v["reason"] == "fine" and set(v["scores"]) >= {"helpfulness"} for v in verdicts)
    assert job.report.judged == 4 and job.report.judge_failures == 0
    judge_calls = [r for r in fake.chat_requests() if schema_name(r.body) == "judgement"]
    assert len(judge_calls) == 4 and all(r.body["model"] == "judge-model" for r in judge_calls)
    assert job.judge_usage.prompt_tokens == 4 * 7 and job.usage.prompt_tokens == 4 * 7


# --- mode curate: filters over an existing dataset --------------------------------------------


def test_curate_filters_an_existing_dataset_into_a_new_one_and_keeps_its_provenance(datagen, fake):
    source_rows = [{"instruction": f"Describe planet number {i} of the solar system in detail.", "output": f"Planet {i}."}
                   for i in range(6)]
    source_rows[4] = {"instruction": "Describe planet number 1 of the solar system in detail!", "output": "Again."}
    source = write_dataset(datagen, "curate-src", source_rows)
    (datagen.data_root / "datasets/curate-src.meta.jsonl").write_text(
        "".join(json.dumps({"strategy": "self_instruct"}) + "\n" for _ in source_rows)
    )
    job = datagen.start(pb.StartGenerationRequest(
        dataset_name="curate-out", mode=CURATE, source_path=source,
        filters=pb.Filters(near_dup=pb.NearDupFilter(enabled=True, threshold=0.9)),
    ))
    assert job.target_rows == 6
    events = datagen.events(job.job_id)
    job = datagen.get(job.job_id)

    rows = assert_published(datagen, job, 5)
    assert rows == [r for i, r in enumerate(source_rows) if i != 4]  # rows copied exactly as they were
    (drop,) = rejected(events)
    assert drop.index == 4 and drop.check == "near_duplicate" and "row 1" in drop.reason
    meta = metadata_of(datagen, job)
    assert [m["source"] for m in meta] == [{"path": source, "row": i} for i in (0, 1, 2, 3, 5)]
    assert all(m["strategy"] == "self_instruct" for m in meta)
    assert not fake.chat_requests() and job.usage.prompt_tokens == 0  # no teacher in mode curate


def test_curate_num_rows_caps_the_rows_kept_not_the_rows_read(datagen):
    source = write_dataset(datagen, "curate-cap-src", [{"instruction": f"Task {i // 2}.", "output": "x"} for i in range(8)])
    job = datagen.start(pb.StartGenerationRequest(dataset_name="curate-cap", mode=CURATE, source_path=source, num_rows=3))
    datagen.events(job.job_id)
    rows = assert_published(datagen, datagen.get(job.job_id), 3)
    # Every other row repeats the one before it: three rows kept means reading five.
    assert [r["instruction"] for r in rows] == ["Task 0.", "Task 1.", "Task 2."]


def test_a_judge_that_fails_keeps_the_rows_with_reasons_and_the_job_resumes(datagen, fake):
    source = write_dataset(
        datagen, "curate-faulty-src", [{"instruction": f"Name a colour, take {i}.", "output": "Blue."} for i in range(8)]
    )
    fake.respond = judge_reply
    # Garbage (the judge asks twice), a 429 and a 503 past the client's one retry, a judge that never
    # answers, more garbage: each row is kept unjudged with its reason; five failures in a row stop the
    # job (the judge is down or unfit).
    fake.script(Reply("I think it is fine!"), Reply("still no JSON"), Status(429), Status(429),
                Status(503), Status(503), Hang(), Hang(), *[Reply("nope")] * 2)
    judge = judge_filter(fake.base_url, limits=pb.Limits(concurrency=1))
    judge.endpoint.request_timeout_s = 0.5
    job = datagen.start(pb.StartGenerationRequest(
        dataset_name="curate-faulty", mode=CURATE, source_path=source, filters=pb.Filters(judge=judge),
    ))
    events = datagen.events(job.job_id)
    job = datagen.get(job.job_id)

    assert job.state == pb.JOB_STATE_FAILED and "judge kept failing" in job.error
    failures = [e.judge_failed for e in events if e.WhichOneof("kind") == "judge_failed"]
    assert len(failures) == 5 and all(f.reason for f in failures)
    reasons = " | ".join(f.reason for f in failures)
    assert "429" in reasons and "503" in reasons and "timed out" in reasons and "no scores" in reasons
    partial_meta = datagen.data_root / "datasets/curate-faulty.meta.jsonl.partial"
    kept = [json.loads(line) for line in partial_meta.read_text().splitlines()]
    assert len(kept) == 5 and all(m["judge"]["error"] for m in kept)

    job = datagen.resume(job.job_id)  # the fake now judges properly
    datagen.events(job.job_id, after_seq=events[-1].seq)
    job = datagen.get(job.job_id)
    rows = assert_published(datagen, job, 8)
    assert [r["instruction"] for r in rows] == [f"Name a colour, take {i}." for i in range(8)]
    meta = metadata_of(datagen, job)
    assert [m["index"] for m in meta] == list(range(8))  # nothing decided twice
    assert [("error" in m["judge"]) for m in meta] == [True] * 5 + [False] * 3


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda r: r.filters.near_dup.MergeFrom(pb.NearDupFilter(enabled=True, threshold=0.3)),
         "filters.near_dup.threshold", "greater than 0.5"),
        (lambda r: r.filters.decontam.eval_paths.append("../outside.jsonl"),
         "filters.decontam.eval_paths[0]", "without '..'"),
        (lambda r: r.filters.decontam.eval_paths.append("datasets/missing.jsonl"),
         "filters.decontam.eval_paths[0]", "does not exist"),
        (lambda r: r.filters.judge.endpoint.MergeFrom(pb.Endpoint(base_url="not a url", model="m")),
         "filters.judge.endpoint.base_url", "http://"),
        (lambda r: r.filters.judge.MergeFrom(judge_filter("http://127.0.0.1:9/v1", min_score=7)),
         "filters.judge.min_score", "5"),
        (lambda r: r.filters.judge.MergeFrom(
            judge_filter("http://127.0.0.1:9/v1", rubric=[pb.Criterion(name="Bad Name!")])),
         "filters.judge.rubric", "name"),
    ],
)
def test_bad_filter_settings_are_refused_naming_the_field(datagen, fake, change, field, words):
    start = request(fake.base_url, "filters-bad", mode=LIST, num_rows=2)
    change(start)
    with pytest.raises(grpc.RpcError) as caught:
        datagen.start(start)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details() and words in caught.value.details()
    assert not fake.chat_requests()


@pytest.mark.parametrize(
    ("source_path", "words"),
    [("datasets/../../etc/passwd.jsonl", "without '..'"), ("datasets/nope.jsonl", "does not exist"), ("", "required")],
)
def test_curate_refuses_a_source_it_cannot_read(datagen, source_path, words):
    with pytest.raises(grpc.RpcError) as caught:
        datagen.start(pb.StartGenerationRequest(dataset_name="curate-bad", mode=CURATE, source_path=source_path))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "source_path" in caught.value.details() and words in caught.value.details()


def test_curate_refuses_a_malformed_source_naming_the_line(datagen):
    path = datagen.data_root / "datasets/curate-malformed.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{not json\n')
    with pytest.raises(grpc.RpcError) as caught:
        datagen.start(pb.StartGenerationRequest(
            dataset_name="curate-malformed-out", mode=CURATE, source_path="datasets/curate-malformed.jsonl"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "line 2" in caught.value.details()
    assert not (datagen.data_root / "datasets/curate-malformed-out.jsonl.partial").exists()
