"""Adapter export: layout, canonical base id, manifest, versioned names, atomicity, merged model."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest

from trainer_svc.export import Lineage, export_adapter, next_version_name, read_manifest, remove_stale_exports

CANONICAL_ID = "microsoft/Phi-3-mini-4k-instruct"  # what vLLM serves; the tiny folder stands in for it


@pytest.fixture(scope="module")
def phi3_dir(tiny_models):
    return tiny_models / "tiny-phi3"


@pytest.fixture(scope="module")
def tokenizer(phi3_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(phi3_dir)


@pytest.fixture
def peft_model(phi3_dir):
    """A LoRA-wrapped tiny Phi-3 with random (non-zero) B matrices, so the adapter changes outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(phi3_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    return get_peft_model(base, config)


def lineage(**changes) -> Lineage:
    values = {
        "run_id": "run-7",
        "base_model_id": CANONICAL_ID,
        "base_model_architecture": "Phi3ForCausalLM",
        "prompt_format": "chat",
        "datasets": [{"path": "datasets/a.jsonl", "sha256": "ab" * 32, "rows": 12, "format": "instruction"}],
        "hyperparameters": {"lora": {"r": 4, "alpha": 8.0}, "training": {"learning_rate": 1e-3}},
        "metrics": {"train_loss": 1.5, "eval_loss": 1.7, "steps": 10},
    }
    return Lineage(**{**values, **changes})


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_layout_canonical_id_and_manifest(data_root, peft_model, tokenizer, phi3_dir):
    result = export_adapter(peft_model, tokenizer, data_root=data_root, stem="faq", lineage=lineage())
    folder = data_root / "adapters" / "faq-v1"
    assert (result.name, result.path, result.relative_path) == ("faq-v1", folder, "adapters/faq-v1")
    names = {p.name for p in folder.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "manifest.json", "README.md",
            "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= names

    adapter_config = json.loads((folder / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == CANONICAL_ID
    assert adapter_config["r"] == 4 and sorted(adapter_config["target_modules"]) == [
        "down_proj", "gate_up_proj", "o_proj", "qkv_proj"]
    # The local path peft was given appears nowhere in the export.
    for path in folder.iterdir():
        if path.suffix in (".json", ".md", ".jinja"):
            assert str(phi3_dir) not in path.read_text(), path.name

    manifest = read_manifest(data_root, "faq-v1")
    assert manifest == result.manifest
    assert manifest["name"] == "faq-v1" and manifest["run_id"] == "run-7"
    assert manifest["base_model"] == {"id": CANONICAL_ID, "architecture": "Phi3ForCausalLM"}
    assert manifest["prompt_format"] == "chat"
    assert manifest["datasets"][0]["sha256"] == "ab" * 32
    assert manifest["hyperparameters"]["lora"]["r"] == 4
    assert manifest["metrics"]["eval_loss"] == 1.7
    assert manifest["weights_sha256"] == sha256(folder / "adapter_model.safetensors") == result.weights_sha256
    for name, digest in manifest["files"].items():
        assert sha256(folder / name) == digest, name
    assert "manifest.json" not in manifest["files"] and manifest["merged_model"] is None
    assert manifest["eval_split"] is None and not (folder / "eval.jsonl").exists()  # no eval rows given
    assert manifest["libraries"]["peft"] and manifest["libraries"]["trl"]


def test_the_eval_split_is_written_and_recorded(data_root, peft_model, tokenizer):
    rows = [{"instruction": "Name a colour.", "output": "Blue."},
            {"messages": [{"role": "user", "content": "Héllo?"}, {"role": "assistant", "content": "Hi."}]}]
    result = export_adapter(peft_model, tokenizer, data_root=data_root, stem="faq", lineage=lineage(),
                            eval_rows=rows)
    path = result.path / "eval.jsonl"
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == rows
    assert result.manifest["eval_split"] == {"file": "eval.jsonl", "rows": 2, "sha256": sha256(path)}
    assert result.manifest["files"]["eval.jsonl"] == sha256(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_files_are_readable_by_other_users(data_root, peft_model, tokenizer):
    result = export_adapter(peft_model, tokenizer, data_root=data_root, stem="faq", lineage=lineage())
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o755
    for path in result.path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_versions_count_up_and_never_overwrite(data_root, peft_model, tokenizer):
    first = export_adapter(peft_model, tokenizer, data_root=data_root, stem="faq", lineage=lineage())
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}
    # A folder made by hand with the next name is respected too.
    (data_root / "adapters" / "faq-v2").mkdir()
    (data_root / "adapters" / "faq-v2" / "keep.txt").write_text("mine")
    second = export_adapter(peft_model, tokenizer, data_root=data_root, stem="faq",
                            lineage=lineage(run_id="run-8"))
    assert second.name == "faq-v3"
    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == before
    assert (data_root / "adapters" / "faq-v2" / "keep.txt").read_text() == "mine"
    assert read_manifest(data_root, "faq-v3")["run_id"] == "run-8"
    # Other stems and look-alikes do not count.
    (data_root / "adapters" / "faq-extra-v9").mkdir()
    assert next_version_name(data_root / "adapters", "faq") == "faq-v4"
    assert next_version_name(data_root / "adapters", "other") == "other-v1"


def test_a_failed_export_leaves_nothing_behind(data_root, peft_model, tokenizer, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tokenizer, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        export_adapter(peft_model, tokenizer, data_root=data_root, stem="faq", lineage=lineage())
    assert [p.name for p in (data_root / "adapters").iterdir()] == [".export.lock"]


def test_stale_temp_folders_are_removed(data_root):
    adapters = data_root / "adapters"
    (adapters / ".export-faq-v1-abc123").mkdir(parents=True)
    (adapters / ".export-faq-v1-abc123" / "adapter_model.safetensors").write_bytes(b"half")
    (adapters / "faq-v1").mkdir()
    assert remove_stale_exports(data_root) == [".export-faq-v1-abc123"]
    assert sorted(p.name for p in adapters.iterdir()) == [".export.lock", "faq-v1"]


def test_merged_full_model_matches_base_plus_adapter(data_root, peft_model, tokenizer, phi3_dir):
    import torch
    from transformers import AutoModelForCausalLM

    result = export_adapter(peft_model, tokenizer, data_root=data_root, stem="faq", lineage=lineage(),
                            merge_from=phi3_dir)
    merged_dir = result.path / "merged"
    assert result.manifest["merged_model"] == "merged"
    assert "merged/model.safetensors" in result.manifest["files"]
    assert str(phi3_dir) not in (merged_dir / "config.json").read_text()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    ids = tokenizer("The quick brown fox", return_tensors="pt")["input_ids"]
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
        got = merged(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(phi3_dir)(input_ids=ids).logits
    assert not torch.allclose(expected, base, atol=1e-4)  # the adapter really changes the model
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
