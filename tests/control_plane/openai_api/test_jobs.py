"""/v1/fine_tuning/jobs through the official SDK: a real run on the tiny Phi-3 from an uploaded
file to a fine-tuned model, its events and checkpoints; pagination; bad input and a down trainer."""

from __future__ import annotations

import openai
import pytest

from control_plane.openai_api.models import JobMetadata
from control_plane.runs.models import Run
from tests.control_plane.helpers import jsonl
from tests.control_plane.runs.factories import AdapterFactory, RunEventFactory, RunFactory
from tests.control_plane.runs.helpers import follow_to_end, training_rows

pytestmark = pytest.mark.django_db(transaction=True)


def upload(sdk, name: str, rows) -> str:
    return sdk.files.create(file=(name, jsonl(rows)), purpose="fine-tune").id


def test_a_job_trains_an_adapter_from_uploaded_files_and_reports_like_openai(sdk, trainer):
    rows = training_rows(24)
    training, validation = upload(sdk, "train.jsonl", rows[:18]), upload(sdk, "valid.jsonl", rows[18:])
    job = sdk.fine_tuning.jobs.create(
        model="tiny-phi3",
        training_file=training,
        validation_file=validation,
        suffix="colours",
        seed=3,
        metadata={"team": "docs"},
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 25, "max_length": 128, "device": "cpu"}}},
    )
    assert job.object == "fine_tuning.job" and job.id.startswith("ftjob-")
    assert job.status in ("validating_files", "queued", "running") and job.fine_tuned_model is None
    assert (job.training_file, job.validation_file, job.model, job.seed) == (training, validation, "tiny-phi3", 3)
    assert job.metadata == {"team": "docs"} and job.user_provided_suffix == "colours"

    follow_to_end(job.id.removeprefix("ftjob-"))  # the worker's part, in-process
    done = sdk.fine_tuning.jobs.retrieve(job.id)
    run = Run.objects.get(run_id=job.id.removeprefix("ftjob-"))
    assert done.status == "succeeded" and done.error is None, done
    assert done.fine_tuned_model == run.adapter.name and done.fine_tuned_model.startswith("colours-v")
    assert done.hyperparameters.model_dump() == {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 25.0}
    assert done.method.supervised.hyperparameters.model_dump() == done.hyperparameters.model_dump()
    assert done.finished_at >= done.created_at and done.trained_tokens and done.trained_tokens > 0
    assert run.eval_rows == 6 and run.train_rows == 18  # the validation file is the eval split

    events = list(sdk.fine_tuning.jobs.list_events(job.id, limit=3))  # newest first, page by page
    assert events[0].message == "The job has successfully completed"
    assert f"New fine-tuned model created: {done.fine_tuned_model}" in [e.message for e in events]
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics and all("step" in e.data for e in metrics)
    assert len({e.id for e in events}) == len(events) == run.events.count()

    checkpoints = sdk.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].fine_tuning_job_id == job.id
    assert checkpoints[0].metrics.valid_loss == pytest.approx(run.metrics["eval_loss"])
    assert done.fine_tuned_model in {c.fine_tuned_model_checkpoint for c in checkpoints}

    with pytest.raises(openai.BadRequestError, match="already succeeded"):
        sdk.fine_tuning.jobs.cancel(job.id)


def test_jobs_list_newest_first_over_several_pages_and_by_metadata(sdk):
    runs = [RunFactory() for _ in range(5)]
    JobMetadata.objects.create(run=runs[2], values={"team": "search"})
    newest_first = [f"ftjob-{r.run_id}" for r in reversed(runs)]

    page = sdk.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == newest_first[:2] and page.has_more
    assert [j.id for j in sdk.fine_tuning.jobs.list(limit=2)] == newest_first
    assert [j.id for j in sdk.fine_tuning.jobs.list(metadata={"team": "search"})] == [f"ftjob-{runs[2].run_id}"]


def test_events_and_checkpoints_page_with_after(sdk):
    run = RunFactory(state=Run.State.SUCCEEDED, step=30, max_steps=30)
    adapter = AdapterFactory(run=run)
    for seq in range(1, 31):
        RunEventFactory(run=run, seq=seq, payload={"step": seq, "max_steps": 30, "epoch": seq / 30, "loss": 1 / seq,
                                                   "learning_rate": 1e-4, "grad_norm": 1.0, "tokens_per_s": 1.0,
                                                   "eta_s": 0})
    for seq, step, best in ((31, 10, True), (32, 20, True), (33, 30, False)):
        RunEventFactory(run=run, seq=seq, type="eval", payload={"step": step, "max_steps": 30, "epoch": step / 30,
                                                              "eval_loss": 1 / step, "is_best": best})
    job_id = f"ftjob-{run.run_id}"

    first = sdk.fine_tuning.jobs.list_events(job_id, limit=20)
    assert first.has_more and len(first.data) == 20 and first.data[0].id == f"ftevent-{run.run_id}-33"
    assert len(list(sdk.fine_tuning.jobs.list_events(job_id, limit=20))) == 33

    checkpoints = sdk.fine_tuning.jobs.checkpoints.list(job_id, limit=2)
    assert [c.step_number for c in checkpoints.data] == [30, 20] and checkpoints.has_more
    assert [c.fine_tuned_model_checkpoint for c in checkpoints.data] == [f"{adapter.name}:ckpt-step-30", adapter.name]
    assert checkpoints.data[1].metrics.train_loss == pytest.approx(1 / 20)
    rest = sdk.fine_tuning.jobs.checkpoints.list(job_id, after=checkpoints.data[-1].id)
    assert [c.step_number for c in rest.data] == [10] and not rest.has_more
    with pytest.raises(openai.BadRequestError, match="not a event id"):
        sdk.fine_tuning.jobs.list_events(job_id, after="ftevent-other-3")


@pytest.mark.parametrize(
    "change, param, match",
    [
        ({"hyperparameters": {"n_epochs": 500}}, "hyperparameters.n_epochs", "out of range"),
        ({"hyperparameters": {"n_epochs": "many"}}, "hyperparameters.n_epochs", '"auto" or a number'),
        ({"hyperparameters": {"learning_rate_multiplier": 1e6}}, "hyperparameters.learning_rate_multiplier", "at most"),
        ({"hyperparameters": {"lora_rank": 8}}, "hyperparameters.lora_rank", "unknown hyperparameter"),
        ({"training_file": "file-missing"}, "training_file", "Upload it with POST /v1/files"),
        ({"model": "../etc"}, "model", "no '..'"),
        ({"method": {"type": "dpo"}}, "method.type", "not a valid choice"),
    ],
    ids=["epochs-range", "epochs-type", "lr-multiplier", "unknown", "no-file", "model-path", "dpo"],
)
def test_bad_input_is_a_bad_request_naming_the_parameter(sdk, change, param, match):
    training = upload(sdk, "train.jsonl", training_rows(4))
    body = {"model": "tiny-phi3", "training_file": training, **change}
    with pytest.raises(openai.BadRequestError, match=match) as info:
        sdk.fine_tuning.jobs.create(**body)
    assert info.value.param == param and Run.objects.count() == 0


def test_a_down_trainer_is_a_503_and_an_unknown_job_a_404(sdk):
    training = upload(sdk, "train.jsonl", training_rows(4))
    with pytest.raises(openai.InternalServerError) as info:
        sdk.fine_tuning.jobs.create(model="tiny-phi3", training_file=training)
    assert info.value.status_code == 503 and "trainer" in info.value.message and Run.objects.count() == 0
    with pytest.raises(openai.NotFoundError, match="No such fine-tuning job"):
        sdk.fine_tuning.jobs.retrieve("ftjob-nope")
    with pytest.raises(openai.NotFoundError):
        sdk.fine_tuning.jobs.cancel("nope")
