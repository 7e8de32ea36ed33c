# syntax=docker/dockerfile:1
# trainer_svc, CUDA variant: LoRA fine-tuning over gRPC (50052), metrics on 9090.
# Build from the repository root:
#   docker build -f deploy/docker/trainer-cuda.Dockerfile -t synthtune-trainer-cuda .
#
# Why a plain Python base and not nvidia/cuda: PyPI's Linux x86_64 torch wheels are CUDA
# builds that carry the CUDA runtime, cuBLAS and cuDNN as nvidia-* wheels; only the driver
# comes from the host (NVIDIA container toolkit). nvidia/cuda images ship Ubuntu's Python,
# not the 3.11 this project pins.
# constraints.txt pins torch==2.13.0 with no local label: from PyPI that is the CUDA build
# (a CPU-only dev machine resolves the same pin to its local 2.13.0+cpu wheel).
# Base image pinned by tag and by the digest of its multi-platform index.

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies in their own layer (no package code yet): they change far less often than the code.
COPY pyproject.toml constraints.txt README.md ./
RUN pip install -c constraints.txt ".[trainer]"
COPY synthtune ./synthtune
COPY trainer_svc ./trainer_svc
RUN pip install --no-deps --force-reinstall .

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime
RUN groupadd --system --gid 10001 synthtune \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin synthtune \
    && install -d -o 10001 -g 10001 -m 0770 /data
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /usr/local/bin/synthtune-healthcheck
# Models and the Hugging Face cache live on the shared data volume: downloaded once, kept
# across restarts. NVIDIA_*: what the container toolkit exposes.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    SYNTHTUNE_DATA_ROOT=/data \
    SYNTHTUNE_MODELS_ROOT=/data/models \
    HF_HOME=/data/.cache/huggingface \
    SYNTHTUNE_TRAINER_LISTEN=[::]:50052 \
    SYNTHTUNE_METRICS_PORT=9090 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /data
USER 10001:10001
EXPOSE 50052 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/bin/synthtune-healthcheck", "grpc", "--listen-env", "SYNTHTUNE_TRAINER_LISTEN"]
CMD ["python", "-m", "trainer_svc"]
