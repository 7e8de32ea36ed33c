"""RunParams: the checks the API and the admin share, each naming the API field."""

from __future__ import annotations

import pytest

from control_plane.core.errors import InvalidArgument
from control_plane.runs.params import RunParams, check_hyperparameters


@pytest.mark.parametrize(
    ("hyperparameters", "field"),
    [
        ({"learning_rate": 0}, "hyperparameters.learning_rate"),
        ({"learning_rate": -1e-4}, "hyperparameters.learning_rate"),
        ({"learning_rate": float("nan")}, "hyperparameters.learning_rate"),
        ({"epochs": 0}, "hyperparameters.epochs"),
        ({"epochs": 1000}, "hyperparameters.epochs"),
        ({"epochs": float("inf")}, "hyperparameters.epochs"),
        ({"batch_size": 0}, "hyperparameters.batch_size"),
        ({"batch_size": 1.5}, "hyperparameters.batch_size"),
        ({"lora_r": 0}, "hyperparameters.lora_r"),
        ({"lora_alpha": 0}, "hyperparameters.lora_alpha"),
        ({"lora_dropout": 1.0}, "hyperparameters.lora_dropout"),
        ({"eval_fraction": 0.5}, "hyperparameters.eval_fraction"),
        ({"max_length": 8}, "hyperparameters.max_length"),
        ({"seed": -1}, "hyperparameters.seed"),
        ({"packing": "yes"}, "hyperparameters.packing"),
        ({"device": "tpu"}, "hyperparameters.device"),
        ({"target_modules": ["../up"]}, "hyperparameters.target_modules"),
        ({"target_modules": ["q proj"]}, "hyperparameters.target_modules"),
        ({"learning_rte": 1e-3}, "hyperparameters.learning_rte"),
        ({"eval_steps": -1}, "hyperparameters.eval_steps"),
        ({"eval_generate_rows": 1001}, "hyperparameters.eval_generate_rows"),
        ({"best_metric": "bleu"}, "hyperparameters.best_metric"),
        ({"early_stopping_patience": 2.5}, "hyperparameters.early_stopping_patience"),
        ({"early_stopping_threshold": -0.1}, "hyperparameters.early_stopping_threshold"),
        ({"export_best": "no"}, "hyperparameters.export_best"),
        ({"report_to": "wandb"}, "hyperparameters.report_to"),
    ],
)
def test_bad_hyperparameters_name_the_field(hyperparameters, field):
    with pytest.raises(InvalidArgument) as error:
        RunParams(datasets=["a"], hyperparameters=hyperparameters)
    assert error.value.extra["field"] == field


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"datasets": []}, "datasets"),
        ({"datasets": ["../etc"]}, "datasets"),
        ({"datasets": ["a", "a"]}, "datasets"),
        ({"base_model": "../models/x"}, "base_model"),
        ({"base_model": "org/../x"}, "base_model"),
        ({"base_model": "/abs/path"}, "base_model"),
        ({"adapter_name": "../escape"}, "adapter_name"),
        ({"adapter_name": "a/b"}, "adapter_name"),
        ({"adapter_name": "x" * 101}, "adapter_name"),
        ({"eval_datasets": ["../etc"]}, "eval_datasets"),
        ({"eval_datasets": ["b", "b"]}, "eval_datasets"),
        ({"eval_datasets": ["a"]}, "eval_datasets"),  # also in datasets: trained on
        ({"eval_datasets": [f"e{i}" for i in range(21)]}, "eval_datasets"),
        ({"eval_datasets": "b"}, "eval_datasets"),
    ],
)
def test_bad_names_name_the_field(overrides, field):
    with pytest.raises(InvalidArgument) as error:
        RunParams(**{"datasets": ["a"], **overrides})
    assert error.value.extra["field"] == field


def test_unset_values_are_dropped_and_the_rest_kept_typed():
    checked = check_hyperparameters(
        {"epochs": 2, "learning_rate": 1e-3, "lora_r": 8.0, "target_modules": "qkv_proj, o_proj", "seed": None,
         "device": "", "packing": False}
    )  # fmt: skip
    assert checked == {
        "epochs": 2.0,
        "learning_rate": 1e-3,
        "lora_r": 8,
        "target_modules": ["qkv_proj", "o_proj"],
        "packing": False,
    }
    assert isinstance(checked["lora_r"], int) and isinstance(checked["epochs"], float)
    params = RunParams(datasets=["a", "b"], base_model="microsoft/Phi-3-mini-4k-instruct", adapter_name="faq")
    assert params.as_json()["datasets"] == ["a", "b"] and params.hyperparameters == {}


def test_eval_and_tracking_settings_reach_the_trainers_request():
    from control_plane.runs.trainer import start_request

    hyperparameters = {"eval_steps": 5, "eval_generate_rows": 16, "best_metric": "eval_chrf", "export_best": False,
                       "early_stopping_patience": 3, "early_stopping_threshold": 0.5, "report_to": "mlflow"}
    request = start_request(RunParams(datasets=["a"], hyperparameters=hyperparameters), dataset_paths=["d.jsonl"])
    hp = request.hyperparameters
    assert (hp.eval_steps, hp.eval_generate_rows, hp.best_metric, hp.export_best) == (5, 16, "eval_chrf", False)
    assert (hp.early_stopping_patience, hp.early_stopping_threshold, hp.report_to) == (3, 0.5, "mlflow")
    assert not hp.HasField("eval_max_new_tokens")  # unset stays unset: the trainer's default
