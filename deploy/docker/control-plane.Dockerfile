# syntax=docker/dockerfile:1
# control_plane: Django admin + REST API under gunicorn (8080, /metrics on the same port).
# The same image runs the worker (`python -m control_plane worker`, metrics on 9090)
# and the migrations (`python -m control_plane migrate --noinput`).
# Build from the repository root:
#   docker build -f deploy/docker/control-plane.Dockerfile -t synthtune-control-plane .
# Base image pinned by tag and by the digest of its multi-platform index.

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies in their own layer (no package code yet): they change far less often than the code.
COPY pyproject.toml constraints.txt README.md ./
RUN pip install -c constraints.txt ".[control-plane]"
COPY synthtune ./synthtune
COPY control_plane ./control_plane
RUN pip install --no-deps --force-reinstall .

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime
RUN groupadd --system --gid 10001 synthtune \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin synthtune \
    && install -d -o 10001 -g 10001 -m 0770 /data
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /usr/local/bin/synthtune-healthcheck
# No DJANGO_STATIC_ROOT: WhiteNoise serves the apps' static files straight from the venv.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    SYNTHTUNE_DATA_ROOT=/data \
    SYNTHTUNE_METRICS_PORT=9090 \
    DJANGO_SETTINGS_MODULE=control_plane.settings
WORKDIR /data
USER 10001:10001
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/synthtune-healthcheck", "http", "http://127.0.0.1:8080/healthz"]
# gunicorn as `make up` runs it: workers, threads (gthread), timeout 0 and keep-alive come from
# control_plane.gunicorn_conf (SYNTHTUNE_WEB_WORKERS, default 2; SYNTHTUNE_WEB_THREADS, default
# 100: each open SSE stream holds one, asleep). Several workers share /metrics through files
# under /tmp (writable: an emptyDir in the chart).
CMD ["gunicorn", "control_plane.wsgi", "--config", "python:control_plane.gunicorn_conf", \
     "--bind", "[::]:8080", "--graceful-timeout", "20"]
