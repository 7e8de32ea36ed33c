"""Run config validation: per-device defaults, and every impossible setting refused by field."""

from __future__ import annotations

import math

import pytest

from synthtune.errors import InvalidArgument
from trainer_svc.hyperparams import RunConfig, resolve

CPU = ("cpu",)


def test_cpu_defaults_follow_the_old_app(make_config):
    resolved = resolve(make_config(), available_devices=CPU)
    assert (resolved.device.kind, resolved.device.dtype, resolved.device.quantize_4bit) == ("cpu", "float32", False)
    assert (resolved.lora.r, resolved.lora.alpha, resolved.lora.dropout) == (8, 16.0, 0.05)
    training = resolved.training
    assert (training.batch_size, training.gradient_accumulation_steps, training.max_length) == (1, 2, 512)
    assert training.packing is True and training.gradient_checkpointing is False
    assert resolved.lora.target_modules == "auto"
    assert resolved.adapter_stem == "tiny-phi3-lora"


def test_cuda_defaults_and_qlora(make_config, monkeypatch):
    monkeypatch.setattr("trainer_svc.hyperparams.bitsandbytes_available", lambda: True)
    config = make_config(device={"device": "auto"})
    resolved = resolve(config, available_devices=("cuda", "cpu"))
    assert (resolved.device.kind, resolved.device.dtype, resolved.device.quantize_4bit) == ("cuda", "bfloat16", True)
    assert (resolved.lora.r, resolved.lora.alpha, resolved.lora.dropout) == (16, 32.0, 0.1)
    assert (resolved.training.batch_size, resolved.training.gradient_accumulation_steps) == (4, 1)
    assert resolved.training.gradient_checkpointing is True
    # Without bitsandbytes, CUDA trains plain bf16 LoRA.
    monkeypatch.setattr("trainer_svc.hyperparams.bitsandbytes_available", lambda: False)
    assert resolve(config, available_devices=("cuda", "cpu")).device.quantize_4bit is False


def test_mps_trains_in_float16(make_config):
    resolved = resolve(make_config(device={"device": "mps"}), available_devices=("mps", "cpu"))
    assert (resolved.device.dtype, resolved.lora.r, resolved.training.gradient_accumulation_steps) == ("float16", 8, 2)


def test_overrides_win_and_alpha_follows_rank(make_config):
    config = make_config(lora={"r": 4, "dropout": 0.0},
                         training={"epochs": 1.5, "batch_size": 3, "max_length": 2048, "packing": False})
    resolved = resolve(config, available_devices=CPU)
    assert (resolved.lora.r, resolved.lora.alpha, resolved.lora.dropout) == (4, 8.0, 0.0)
    assert (resolved.training.epochs, resolved.training.batch_size) == (1.5, 3)
    assert resolved.training.max_length == 2048  # exactly the model's context length is allowed
    assert resolved.training.packing is False


def test_auto_detects_this_machine(make_config):
    resolved = resolve(make_config(device={"device": "auto"}))
    assert resolved.device.kind in ("cuda", "mps", "cpu")


# (case, RunConfig changes, field named in the error, words the message must hold)
BAD = [
    ("lr zero", {"training": {"learning_rate": 0}}, "learning_rate", "(0, 1]"),
    ("lr negative", {"training": {"learning_rate": -1e-4}}, "learning_rate", "(0, 1]"),
    ("lr nan", {"training": {"learning_rate": math.nan}}, "learning_rate", "finite"),
    ("lr absurd", {"training": {"learning_rate": 3.0}}, "learning_rate", "1e-4"),
    ("epochs zero", {"training": {"epochs": 0}}, "epochs", "(0, 100]"),
    ("epochs absurd", {"training": {"epochs": 1000}}, "epochs", "(0, 100]"),
    ("batch zero", {"training": {"batch_size": 0}}, "batch_size", "between 1 and"),
    ("batch fraction", {"training": {"batch_size": 1.5}}, "batch_size", "whole number"),
    ("batch bool", {"training": {"batch_size": True}}, "batch_size", "whole number"),
    ("grad accum zero", {"training": {"gradient_accumulation_steps": 0}}, "gradient_accumulation_steps", "1"),
    ("max_length above the model", {"training": {"max_length": 4096}}, "max_length", "context length"),
    ("max_length tiny", {"training": {"max_length": 4}}, "max_length", "between 16"),
    ("eval fraction negative", {"training": {"eval_fraction": -0.1}}, "eval_fraction", "[0, 0.5)"),
    ("eval fraction half", {"training": {"eval_fraction": 0.5}}, "eval_fraction", "[0, 0.5)"),
    ("packing not bool", {"training": {"packing": "yes"}}, "packing", "true or false"),
    ("seed negative", {"training": {"seed": -1}}, "seed", "between 0"),
    ("warmup one", {"training": {"warmup_ratio": 1.0}}, "warmup_ratio", "[0, 1)"),
    ("scheduler", {"training": {"lr_scheduler": "bogus"}}, "lr_scheduler", "cosine"),
    ("rank zero", {"lora": {"r": 0}}, "r", "between 1"),
    ("rank absurd", {"lora": {"r": 5000}}, "r", "between 1 and 1024"),
    ("rank above hidden size", {"lora": {"r": 256}}, "r", "hidden size (128)"),
    ("alpha zero", {"lora": {"alpha": 0}}, "alpha", "(0, 10000]"),
    ("dropout one", {"lora": {"dropout": 1.0}}, "dropout", "[0, 1)"),
    ("targets empty string", {"lora": {"target_modules": " "}}, "target_modules", "all-linear"),
    ("targets empty list", {"lora": {"target_modules": []}}, "target_modules", "non-empty list"),
    ("device unknown", {"device": {"device": "tpu"}}, "device", "auto, cuda, mps, cpu"),
    ("device missing here", {"device": {"device": "cuda"}}, "device", "not available here"),
    ("4-bit on cpu", {"device": {"quantize_4bit": True}}, "quantize_4bit", "CUDA"),
    ("run id escapes", {"run_id": "../x"}, "run_id", "plain name"),
    ("adapter name escapes", {"adapter_name": "a/../b"}, "adapter_name", "plain name"),
    ("no datasets", {"datasets": []}, "datasets", "at least one"),
    ("dataset twice", {"datasets": ["datasets/a.jsonl", "datasets/a.jsonl"]}, "datasets", "twice"),
    ("base id traversal", {"base_model_id": "../../etc"}, "base_model_id", "org/name"),
    ("base path not a model", {"base_model_path": "/nonexistent"}, "base_model_path", "no config.json"),
    ("base id not cached", {"base_model_id": "nobody/no-such-model", "base_model_path": None},
     "base_model_id", "not available locally"),
]


@pytest.mark.parametrize(("changes", "field", "words"), [case[1:] for case in BAD], ids=[c[0] for c in BAD])
def test_bad_settings_are_refused_naming_the_field(make_config, changes, field, words):
    with pytest.raises(InvalidArgument) as caught:
        resolve(make_config(**changes), available_devices=CPU)
    assert caught.value.field == field
    assert caught.value.extra["field"] == field
    assert words in caught.value.message, caught.value.message
    assert caught.value.http_status == 400


def test_max_length_error_names_the_models_limit(make_config):
    with pytest.raises(InvalidArgument, match=r"between 16 and 2048 \(the model's context length\)"):
        resolve(make_config(training={"max_length": 2049}), available_devices=CPU)


def test_config_round_trips_through_json_data(make_config):
    config = make_config(lora={"r": 4, "target_modules": ["qkv_proj", "o_proj"]}, training={"epochs": 2})
    again = RunConfig.from_dict(config.to_dict())
    assert again == config


@pytest.mark.parametrize(("data", "field"), [
    ({"run_id": "r", "data_root": "/x", "datasets": [], "learning_rate": 1}, "learning_rate"),
    ({"run_id": "r", "data_root": "/x", "datasets": [], "training": {"lr": 1}}, "training.lr"),
    ({"run_id": "r", "data_root": "/x", "datasets": [], "lora": "big"}, "lora"),
    ({"data_root": "/x", "datasets": []}, "config"),
])
def test_unknown_or_missing_fields_are_refused(data, field):
    with pytest.raises(InvalidArgument) as caught:
        RunConfig.from_dict(data)
    assert caught.value.field == field


def test_limits_come_from_the_real_phi3_mini_config(make_config, phi3_mini_config_dir):
    base = {"base_model_id": "microsoft/Phi-3-mini-4k-instruct", "base_model_path": str(phi3_mini_config_dir)}
    resolved = resolve(make_config(training={"max_length": 4096}, lora={"r": 64}, **base), available_devices=CPU)
    assert resolved.model.max_positions == 4096 and resolved.model.hidden_size == 3072
    assert resolved.adapter_stem == "Phi-3-mini-4k-instruct-lora"
    with pytest.raises(InvalidArgument, match=r"between 16 and 4096 \(the model's context length\)"):
        resolve(make_config(training={"max_length": 8192}, **base), available_devices=CPU)
