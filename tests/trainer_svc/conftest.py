"""Shared helpers for the trainer tests: dataset files and run configs on the tiny models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from synthtune.prompt_format import instruction_prompt
from synthtune.trainer.v1 import trainer_pb2 as pb
from trainer_svc.hyperparams import DeviceOptions, DistributedOptions, LoraOptions, RunConfig, TrainingOptions

ANSWER = "The blue heron waits by the quiet river."
TOPICS = ["apples", "trains", "rivers", "stars", "bread", "music", "chess", "rain", "maps", "clocks"]
VERBS = ["Tell me about", "Explain", "Describe", "Write a note on", "What do you know about",
         "Summarise facts on", "Give a fact about", "Say something about", "Comment on", "Define"]
# Never seen in training: other verbs and other topics.
HELD_OUT = ["Describe volcanoes.", "Tell me about penguins.", "Explain the moon.", "What is tea?",
            "Write a poem about snow.", "How do engines work?", "Name a colour.", "Why is the sky blue?",
            "Give me advice on sleep.", "Talk about dogs."]


def fixed_answer_rows(n: int = 100) -> list[dict]:
    """n distinct instructions (10 verbs x 10 topics) whose answer is always ANSWER."""
    rows = [{"instruction": f"{verb} {topic}.", "output": ANSWER} for topic in TOPICS for verb in VERBS]
    return rows[:n]


def write_dataset(data_root: Path, name: str, rows: list[dict] | str) -> str:
    """Write datasets/<name>.jsonl (rows, or raw text) and return its relative path."""
    path = data_root / "datasets" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = rows if isinstance(rows, str) else "".join(json.dumps(row) + "\n" for row in rows)
    path.write_text(text)
    return f"datasets/{name}.jsonl"


TERMINAL_STATES = frozenset({pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_FAILED, pb.RUN_STATE_CANCELLED})


def wait_for_run(stub, run_id: str, predicate=lambda run: run.state in TERMINAL_STATES,
                 timeout_s: float = 300) -> pb.Run:
    """Poll the trainer's GetRun until `predicate(run)` (default: the run ended); fail after `timeout_s`.
    The default is a bound on a hang: a run's fresh processes import torch and transformers, which
    a fresh-clone `make test` has slowed several-fold (tests.support.procs.START_RUN_TIMEOUT_S)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).run
        if predicate(run):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} never reached the condition; last state {run.state}")


MAX_NEW_TOKENS = 40


def generate(model_dir, adapter_dir, prompts: list[str]) -> list[tuple[str, bool]]:
    """Greedy answers as (text, stopped on an end token before MAX_NEW_TOKENS); base model if no adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir or model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    stop_ids = model.generation_config.eos_token_id
    stop_ids = set(stop_ids if isinstance(stop_ids, list) else [stop_ids])
    answers = []
    for prompt in prompts:
        if tokenizer.chat_template:
            inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                   return_dict=True, return_tensors="pt")
        else:
            inputs = tokenizer(instruction_prompt(prompt), return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1]:].tolist()
        stopped = bool(new) and new[-1] in stop_ids and len(new) < MAX_NEW_TOKENS
        answers.append((tokenizer.decode(new, skip_special_tokens=True).strip(), stopped))
    return answers


def run_config(data_root: Path, models: Path, *, model: str = "tiny-phi3", datasets: list[str] | None = None,
               lora: dict | None = None, training: dict | None = None, **fields) -> RunConfig:
    """A CPU run on a tiny model; the canonical id is the model's name, its folder the local path."""
    if datasets is None:
        datasets = [write_dataset(data_root, "fixed", fixed_answer_rows())]
    return RunConfig(
        run_id=fields.pop("run_id", "run-1"),
        data_root=str(data_root),
        datasets=datasets,
        base_model_id=fields.pop("base_model_id", model),
        base_model_path=fields.pop("base_model_path", str(models / model)),
        device=DeviceOptions(**{"device": "cpu", **fields.pop("device", {})}),
        lora=LoraOptions(**(lora or {})),
        training=TrainingOptions(**(training or {})),
        distributed=DistributedOptions(**fields.pop("distributed", {})),
        **fields,
    )


@pytest.fixture
def make_config(data_root, tiny_models):
    def make(**kwargs) -> RunConfig:
        return run_config(data_root, tiny_models, **kwargs)

    return make


# microsoft/Phi-3-mini-4k-instruct's config.json (no hub here): enough to build it on the meta
# device and to check settings against the real default model without its 7.6 GB of weights.
PHI3_MINI_CONFIG = {
    "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
    "max_position_embeddings": 4096, "original_max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0, "rope_scaling": None, "sliding_window": 2047, "hidden_act": "silu",
    "bos_token_id": 1, "eos_token_id": 32000, "pad_token_id": 32000, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "attention_bias": False, "attention_dropout": 0.0, "embd_pdrop": 0.0,
    "resid_pdrop": 0.0, "initializer_range": 0.02, "use_cache": True,
}


@pytest.fixture(scope="session")
def phi3_mini_config_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("phi3-mini-config")
    (folder / "config.json").write_text(json.dumps(PHI3_MINI_CONFIG))
    return folder
