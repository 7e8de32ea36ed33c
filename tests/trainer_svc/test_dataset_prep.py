"""Dataset preparation: path and content checks, conversion, the split, and the length report."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from synthtune.errors import InvalidArgument
from tests.trainer_svc.conftest import fixed_answer_rows, write_dataset
from trainer_svc.dataset_prep import load_tokenizer, prepare_data, split_rows, training_chat_template


@pytest.fixture(scope="module")
def phi3_tokenizer(tiny_models):
    return load_tokenizer(tiny_models / "tiny-phi3")


@pytest.fixture(scope="module")
def plain_tokenizer(tiny_models):
    return load_tokenizer(tiny_models / "tiny-llama-plain")


def prepare(data_root, datasets, tokenizer, *, max_length=512, eval_fraction=0.1, seed=42):
    return prepare_data(data_root, datasets, tokenizer, max_length=max_length, eval_fraction=eval_fraction, seed=seed)


@pytest.mark.parametrize(("relative", "words"), [
    ("datasets/missing.jsonl", "does not exist"),
    ("../outside.jsonl", "must not contain '..'"),
    ("datasets/../../etc/passwd", "must not contain '..'"),
    ("/etc/passwd", "relative to the data root"),
    ("runs/r/config.jsonl", "under datasets/"),
    ("datasets/notes.txt", ".jsonl file"),
    ("datasets/part.jsonl.partial", ".jsonl file"),
])
def test_bad_dataset_paths_are_refused(data_root, phi3_tokenizer, relative, words):
    (data_root / "datasets").mkdir()
    (data_root / "datasets" / "notes.txt").write_text("{}\n")
    with pytest.raises(InvalidArgument) as caught:
        prepare(data_root, [relative], phi3_tokenizer)
    assert caught.value.field == "datasets"
    assert words in caught.value.message


def test_a_symlink_out_of_the_data_root_is_refused(data_root, tmp_path, phi3_tokenizer):
    outside = tmp_path / "secret.jsonl"
    outside.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    (data_root / "datasets").mkdir()
    os.symlink(outside, data_root / "datasets" / "link.jsonl")
    with pytest.raises(InvalidArgument, match="outside the data root"):
        prepare(data_root, ["datasets/link.jsonl"], phi3_tokenizer)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_an_empty_dataset_is_refused(data_root, phi3_tokenizer, text):
    relative = write_dataset(data_root, "empty", text)
    with pytest.raises(InvalidArgument, match="is empty: it holds no rows") as caught:
        prepare(data_root, [relative], phi3_tokenizer)
    assert caught.value.extra["reason"] == "empty_dataset"


def test_bad_lines_are_listed_by_number(data_root, phi3_tokenizer):
    good = json.dumps({"instruction": "a", "output": "b"})
    relative = write_dataset(data_root, "bad", f"{good}\nnot json\n{good}\n" + json.dumps({"instruction": "x"}) + "\n")
    with pytest.raises(InvalidArgument) as caught:
        prepare(data_root, [relative], phi3_tokenizer)
    assert "2 bad line(s)" in caught.value.message
    assert "line 2: not valid JSON" in caught.value.message
    assert 'line 4: "output" must be a non-empty string' in caught.value.message


def test_report_for_chat_rows_on_a_chat_model(data_root, phi3_tokenizer):
    rows = fixed_answer_rows(100)
    relative = write_dataset(data_root, "fixed", rows)
    prepared = prepare(data_root, [relative], phi3_tokenizer)
    report = prepared.report
    assert report.prompt_format == "chat"
    assert (report.rows, report.train_rows, report.eval_rows) == (100, 90, 10)
    (info,) = report.datasets
    raw = (data_root / relative).read_bytes()
    assert (info.path, info.rows, info.format) == (relative, 100, "instruction")
    assert info.sha256 == hashlib.sha256(raw).hexdigest() and info.size_bytes == len(raw)
    assert set(prepared.train[0]) == {"messages"}
    assert prepared.train[0]["messages"][-1] == {"role": "assistant", "content": rows[0]["output"]}
    # Lengths are what trl will tokenize: the template, end token included.
    lengths = [len(phi3_tokenizer.apply_chat_template(ex["messages"], tokenize=True, return_dict=True)["input_ids"])
               for ex in prepared.train + prepared.eval]
    assert (report.token_lengths.min, report.token_lengths.max) == (min(lengths), max(lengths))
    assert report.truncated_rows == report.dropped_rows == 0 and report.warnings == ()


def test_instruction_rows_on_a_model_without_template(data_root, plain_tokenizer):
    chat_row = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                             {"role": "assistant", "content": "Hello."}]}
    relative = write_dataset(data_root, "mixed", [{"instruction": "Say hi.", "output": "Hi."}, chat_row])
    prepared = prepare(data_root, [relative], plain_tokenizer)
    assert prepared.report.prompt_format == "instruction"
    assert prepared.report.datasets[0].format == "mixed"
    first, second = prepared.train
    assert first == {"prompt": "### Instruction:\nSay hi.\n\n### Response:\n", "completion": "Hi."}
    assert second["prompt"].startswith("Be brief.\n\n### Instruction:\nHi?") and second["completion"] == "Hello."
    # prompt + completion + eos, as trl tokenizes it.
    expected = len(plain_tokenizer(first["prompt"] + "Hi." + plain_tokenizer.eos_token)["input_ids"])
    assert prepared.report.token_lengths.min <= expected <= prepared.report.token_lengths.max


def test_truncation_and_dropped_rows_are_reported(data_root, plain_tokenizer):
    long_answer = " ".join(["word"] * 200)
    long_prompt = " ".join(["ask"] * 200)
    rows = ([{"instruction": "Short?", "output": "Yes."}] * 3 + [{"instruction": "Long?", "output": long_answer}] * 2
            + [{"instruction": long_prompt, "output": "ok"}])
    relative = write_dataset(data_root, "lengths", rows)
    report = prepare(data_root, [relative], plain_tokenizer, max_length=64).report
    assert report.rows == 6 and report.max_length == 64
    assert report.truncated_rows == 3  # the two long answers and the long prompt
    assert report.dropped_rows == 1  # the prompt alone fills max_length
    assert report.train_rows == 5  # dropped rows do not train
    assert report.token_lengths.max > 200
    assert any("3 of 6 rows are longer than max_length=64" in w for w in report.warnings)
    assert any("1 rows are left out" in w for w in report.warnings)
    assert any("no held-out eval split" in w for w in report.warnings)  # 5 rows < 20


def test_every_row_dropped_is_an_error_on_max_length(data_root, plain_tokenizer):
    relative = write_dataset(data_root, "prompts", [{"instruction": " ".join(["ask"] * 50), "output": "ok"}])
    with pytest.raises(InvalidArgument, match="too short for every row") as caught:
        prepare(data_root, [relative], plain_tokenizer, max_length=16)
    assert caught.value.field == "max_length"


def test_several_datasets_are_concatenated(data_root, phi3_tokenizer):
    a = write_dataset(data_root, "a", fixed_answer_rows(30))
    b = write_dataset(data_root, "b", fixed_answer_rows(12))
    report = prepare(data_root, [a, b], phi3_tokenizer).report
    assert [d.rows for d in report.datasets] == [30, 12]
    assert report.rows == 42 and report.eval_rows == 4


def test_the_eval_rows_are_the_original_rows_behind_the_eval_examples(data_root, plain_tokenizer):
    # Distinct answers, an optional input and system: the rows must come back exactly as read.
    rows = [{"instruction": f"Question {i}?", "output": f"Answer {i}.", **({"input": f"ctx {i}"} if i % 3 else {}),
             **({"system": "Be brief."} if i % 5 == 0 else {})} for i in range(40)]
    prepared = prepare(data_root, [write_dataset(data_root, "varied", rows)], plain_tokenizer)
    assert len(prepared.eval_rows) == len(prepared.eval) == prepared.report.eval_rows == 4
    assert all(row in rows for row in prepared.eval_rows)
    # Row k of eval_rows is what eval example k was made from.
    for row, example in zip(prepared.eval_rows, prepared.eval):
        assert example["completion"] == row["output"] and row["instruction"] in example["prompt"]
    train_outputs = {example["completion"] for example in prepared.train}
    assert not train_outputs & {row["output"] for row in prepared.eval_rows}


def test_eval_datasets_are_the_eval_split_and_nothing_is_held_out(data_root, plain_tokenizer):
    train = write_dataset(data_root, "train", fixed_answer_rows(30))
    held = [{"instruction": f"Held question {i}?", "output": f"Held answer {i}."} for i in range(5)]
    held_path = write_dataset(data_root, "held", held)
    prepared = prepare_data(data_root, [train], plain_tokenizer, max_length=512, eval_fraction=0.0, seed=42,
                            eval_datasets=[held_path])
    report = prepared.report
    assert (report.rows, report.train_rows, report.eval_rows) == (35, 30, 5)
    assert prepared.eval_rows == held and [e["completion"] for e in prepared.eval] == [r["output"] for r in held]
    assert [d.path for d in report.datasets] == [train] and [d.path for d in report.eval_datasets] == [held_path]
    assert report.to_dict()["eval_datasets"][0]["rows"] == 5 and not report.warnings


def test_bad_eval_datasets_are_refused_naming_eval_datasets(data_root, phi3_tokenizer):
    train = write_dataset(data_root, "train", fixed_answer_rows(30))
    good = json.dumps({"instruction": "a", "output": "b"})
    cases = {
        "datasets/missing.jsonl": "does not exist",
        "../outside.jsonl": "must not contain '..'",
        write_dataset(data_root, "bad", f"{good}\nnot json\n"): "line 2: not valid JSON",
        write_dataset(data_root, "empty", ""): "is empty",
    }
    for relative, words in cases.items():
        with pytest.raises(InvalidArgument) as caught:
            prepare_data(data_root, [train], phi3_tokenizer, max_length=512, eval_fraction=0.1, seed=42,
                         eval_datasets=[relative])
        assert caught.value.field == "eval_datasets" and words in caught.value.message, relative


def test_split_is_deterministic_disjoint_and_seeded():
    rows = list(range(200))
    train, held = split_rows(rows, 0.1, seed=42)
    assert (len(train), len(held)) == (180, 20)
    assert sorted(train + held) == rows and not set(train) & set(held)
    assert split_rows(rows, 0.1, seed=42) == (train, held)
    assert split_rows(rows, 0.1, seed=7)[1] != held
    assert split_rows(rows, 0.0, seed=42) == (rows, [])
    assert split_rows(rows[:19], 0.1, seed=42) == (rows[:19], [])  # too few rows to hold any out
    assert len(split_rows(rows[:20], 0.01, seed=42)[1]) == 1  # at least one once there are enough


def test_a_chat_template_without_generation_markers_is_refused(tiny_models):
    tokenizer = load_tokenizer(tiny_models / "tiny-phi3")
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}<|end|>{% endfor %}"
    with pytest.raises(InvalidArgument, match="no {% generation %} markers") as caught:
        training_chat_template(tokenizer)
    assert caught.value.field == "base_model_id"


def test_a_template_that_does_not_train_the_end_token_is_refused(tiny_models):
    tokenizer = load_tokenizer(tiny_models / "tiny-phi3")
    # The end token sits outside the generation block: the model would never learn to stop.
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}",
        "{% generation %}{{ message['content'] }}{% endgeneration %}{{ '<|end|>' }}",
    )
    assert "{% endgeneration %}{{ '<|end|>' }}" in tokenizer.chat_template
    with pytest.raises(InvalidArgument, match="would not learn to stop"):
        training_chat_template(tokenizer)


def test_the_tiny_template_trains_the_end_token(phi3_tokenizer):
    assert training_chat_template(phi3_tokenizer) is None  # its own template is used as is
