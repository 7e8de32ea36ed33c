# syntax=docker/dockerfile:1
# serving_proxy_svc: adapter hot-load into vLLM and compare, over gRPC (50053), metrics on 9090.
# Build from the repository root:
#   docker build -f deploy/docker/serving-proxy.Dockerfile -t synthtune-serving-proxy .
# Base image pinned by tag and by the digest of its multi-platform index.

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies in their own layer (no package code yet): they change far less often than the code.
COPY pyproject.toml constraints.txt README.md ./
RUN pip install -c constraints.txt ".[serving]"
COPY synthtune ./synthtune
COPY serving_proxy_svc ./serving_proxy_svc
RUN pip install --no-deps --force-reinstall .

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime
RUN groupadd --system --gid 10001 synthtune \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin synthtune \
    && install -d -o 10001 -g 10001 -m 0770 /data
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /usr/local/bin/synthtune-healthcheck
# SYNTHTUNE_VLLM_ADAPTER_ROOT has no image default on purpose: it is where *vLLM* mounts
# the adapters/ folder, which only the deploy (compose, Helm values) knows.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    SYNTHTUNE_DATA_ROOT=/data \
    SYNTHTUNE_SERVING_PROXY_LISTEN=[::]:50053 \
    SYNTHTUNE_METRICS_PORT=9090
WORKDIR /data
USER 10001:10001
EXPOSE 50053 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/usr/local/bin/synthtune-healthcheck", "grpc", "--listen-env", "SYNTHTUNE_SERVING_PROXY_LISTEN"]
CMD ["python", "-m", "serving_proxy_svc"]
