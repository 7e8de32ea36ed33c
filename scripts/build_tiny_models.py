"""Build the tiny, randomly initialised models that the tests and the demo use.

    .venv/bin/python scripts/build_tiny_models.py --out var/models

Fully offline and reproducible: the tokenizer is trained on files of the local
Python standard library and the weights come from a fixed seed, so two builds on
the same machine give byte-identical folders. Writes:

    OUT/tiny-phi3/         Phi3ForCausalLM  + tokenizer with chat template
    OUT/tiny-llama/        LlamaForCausalLM + tokenizer with chat template
    OUT/tiny-llama-plain/  LlamaForCausalLM + tokenizer WITHOUT chat template
    OUT/.built             marker: JSON with the build fingerprint, written last

Each model folder is built in OUT/.staging-<pid> and swapped in with renames, so a
reader never sees a half-built folder, and the marker is written last. Other folders
in OUT (SmolLM2, from scripts/build_smollm2.py) are left alone. Heavy imports live
inside functions so that tests/support/models.py can import this module cheaply for
`fingerprint()`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import sysconfig
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SEED = 1234
VOCAB_SIZE = 4096
MARKER = ".built"

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
# Order fixes the ids: <s>=0 ... <|end|>=7, then the BPE vocabulary.
SPECIAL_TOKENS = [BOS, EOS, PAD, UNK, SYSTEM, USER, ASSISTANT, END]

# Phi-3 style turns. The assistant's <|end|> sits INSIDE {% generation %}, so
# assistant-only loss (trl's return_assistant_tokens_mask) trains the model to stop.
# transformers renders with trim_blocks, so newlines are written as '\n' expressions.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ '<|system|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{{ '<|user|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\\n' }}"
    "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ raise_exception('Unsupported role: ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# Stable, mostly-English files of the standard library (docs and docstrings).
CORPUS_FILES = [
    "pydoc_data/topics.py",
    "argparse.py",
    "textwrap.py",
    "difflib.py",
    "inspect.py",
    "json/__init__.py",
    "json/decoder.py",
    "json/encoder.py",
]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str  # "phi3" or "llama"
    chat: bool  # ship the chat template (and stop on <|end|>)


MODELS = [
    ModelSpec("tiny-phi3", "phi3", chat=True),
    ModelSpec("tiny-llama", "llama", chat=True),
    ModelSpec("tiny-llama-plain", "llama", chat=False),
]

# Shared shape: small enough to load in vLLM in seconds, big enough for LoRA r=8.
HIDDEN, LAYERS, HEADS, INTERMEDIATE, MAX_POSITIONS = 128, 2, 4, 256, 2048


def fingerprint() -> str:
    """A digest of everything that decides the output: this file and the library versions.

    A folder whose marker holds a different fingerprint is stale and must be rebuilt.
    """
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for package in ("torch", "transformers", "tokenizers", "safetensors"):
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()


def is_built(out: Path) -> bool:
    """True when `out` holds a complete build made by this exact script and libraries."""
    try:
        return json.loads((out / MARKER).read_text())["fingerprint"] == fingerprint()
    except (OSError, ValueError, KeyError, TypeError):
        return False


def corpus_paths() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = [stdlib / name for name in CORPUS_FILES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"tokenizer corpus files missing: {missing}")
    return paths


def train_tokenizer(paths: list[Path]):
    """Train a byte-level BPE (GPT-2 style) with the special tokens at ids 0-7."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=None))  # byte-level: every byte is in the vocab
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Read the files ourselves, in a fixed order, so training sees the same stream each time.
    texts = [p.read_text(encoding="utf-8") for p in paths]
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    if tokenizer.get_vocab_size() != VOCAB_SIZE:
        raise RuntimeError(f"tokenizer has {tokenizer.get_vocab_size()} tokens, expected {VOCAB_SIZE}")
    return tokenizer


def wrap_tokenizer(raw, *, chat: bool):
    """Wrap the raw tokenizer as a transformers fast tokenizer.

    Chat tokenizers end a turn (and generation) with <|end|>; the plain one with </s>.
    add_bos_token makes plain `tokenizer(text)` start with <s>, as Llama's does; the chat
    template writes <s> itself and is encoded without special tokens (by HF and vLLM alike).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(raw.to_str()),  # a copy: each model gets its own
        bos_token=BOS,
        eos_token=END if chat else EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[SYSTEM, USER, ASSISTANT, END] if chat else [],
        add_bos_token=True,
        add_eos_token=False,
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def model_config(spec: ModelSpec, tokenizer):
    from transformers import LlamaConfig, Phi3Config

    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": MAX_POSITIONS,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
        "dtype": "float32",  # vLLM reads this; --dtype float32 agrees with it
    }
    if spec.arch == "phi3":
        # Phi-3 defaults original_max_position_embeddings to 4096; keep it equal (no long-rope scaling).
        return Phi3Config(num_key_value_heads=HEADS, original_max_position_embeddings=MAX_POSITIONS, **common)
    if spec.arch == "llama":
        # Grouped-query attention (2 KV heads), as in current Llamas, so LoRA sees unequal q and k/v sizes.
        return LlamaConfig(num_key_value_heads=2, head_dim=HIDDEN // HEADS, **common)
    raise ValueError(f"unknown arch {spec.arch!r}")


def generation_config(tokenizer, *, chat: bool):
    from transformers import GenerationConfig

    # Chat models stop on <|end|> and on </s>; vLLM and HF generate both read this list.
    eos = [tokenizer.convert_tokens_to_ids(t) for t in ([END, EOS] if chat else [EOS])]
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id
    )


def build_model(spec: ModelSpec, raw_tokenizer, folder: Path) -> None:
    """Write one model folder: safetensors weights, config, generation config, tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = wrap_tokenizer(raw_tokenizer, chat=spec.chat)
    config = model_config(spec, tokenizer)
    torch.manual_seed(SEED)  # same seed per model: each folder is reproducible on its own
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = generation_config(tokenizer, chat=spec.chat)
    model.save_pretrained(folder)  # safetensors is the only format transformers 5 writes
    tokenizer.save_pretrained(folder)
    # transformers writes the weights 0600; make the folder readable like the rest (containers, other users).
    for path in folder.iterdir():
        path.chmod(0o644)


def build_all(out: Path) -> float:
    """Build every tiny model into `out` (replacing those folders only) and return the seconds it took.

    Other folders in `out` (the SmolLM2 conversion, scripts/build_smollm2.py) are left alone.
    """
    import torch
    from transformers.utils import logging as hf_logging

    started = time.monotonic()
    torch.use_deterministic_algorithms(True)
    hf_logging.disable_progress_bar()  # "Writing model shards" bars are noise in test logs
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        (out / MARKER).unlink(missing_ok=True)  # stale until every folder is swapped in
        paths = corpus_paths()
        raw = train_tokenizer(paths)
        for spec in MODELS:
            build_model(spec, raw, staging / spec.name)
        for spec in MODELS:
            _swap_in(staging / spec.name, out / spec.name)
        marker = {
            "fingerprint": fingerprint(),
            "seed": SEED,
            "models": [spec.name for spec in MODELS],
            "corpus_sha256": _sha256_files(paths),
        }
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        (staging / MARKER).rename(out / MARKER)  # written last: its presence means a complete build
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return time.monotonic() - started


def _sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _swap_in(staging: Path, out: Path) -> None:
    """Replace `out` with `staging` using renames, so `out` is never half-written."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("var/models"), help="folder to (re)build")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    seconds = build_all(args.out)
    print(f"built {', '.join(s.name for s in MODELS)} in {args.out} ({seconds:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
