"""deploy/compose, checked without Docker: yamllint, the Compose Specification's JSON
schema (before and after variable interpolation), and what must hold between services."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
import yamllint.config
import yamllint.linter

from tests.deploy.conftest import COMPOSE_DIR, DEPLOY, REPO, YAMLLINT_CONFIG

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
COMPOSE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
PROFILES = ("cpu", "gpu")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|DATABASE_URL|API_KEY")
SYNTHTUNE_SERVICES = {"migrate", "datagen", "trainer", "trainer-gpu", "serving-proxy", "control-plane", "worker"}

# Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-x}, ${VAR-x}, ${VAR:?x}, ${VAR?x}, ${VAR:+x}, ${VAR+x}.
_VARIABLE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?+])([^}]*))?\}|(\w+))")


class MissingVariable(Exception):
    pass


def interpolate(node, env: dict[str, str]):
    """`node` with every string interpolated as `docker compose` does, against `env`."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match) -> str:
        dollar, name, op, arg, bare = match.groups()
        if dollar:
            return "$"
        name = name or bare
        assert "${" not in (arg or ""), "nested interpolation: keep the test's interpolator honest"
        value, is_set = env.get(name, ""), name in env
        if op in (":-", "-"):
            return value if (value if op == ":-" else is_set) else arg
        if op in (":?", "?"):
            if not (value if op == ":?" else is_set):
                raise MissingVariable(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if (value if op == ":+" else is_set) else ""
        return value

    return _VARIABLE.sub(substitute, node)


def variables(node) -> dict[str, str | None]:
    """Every variable the file references -> its operator (None for a bare reference)."""
    found: dict[str, str | None] = {}
    text = COMPOSE.read_text() if node is None else json.dumps(node)
    for match in _VARIABLE.finditer(text):
        _, name, op, _, bare = match.groups()
        if name or bare:
            found[name or bare] = op
    return found


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), line
            values[key] = value
    return values


def filled_env() -> dict[str, str]:
    """.env.example with the blanks a user must fill filled in."""
    env = env_example()
    for key, value in env.items():
        if not value:
            env[key] = f"test-{key.lower()}-0123456789abcdef0123456789abcdef"
    return env


def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def resolved() -> dict:
    return interpolate(raw(), filled_env())


def active(model: dict, profile: str) -> dict[str, dict]:
    return {name: service for name, service in model["services"].items()
            if not service.get("profiles") or profile in service["profiles"]}


def env_of(service: dict) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict)
    return {key: str(value) for key, value in environment.items()}


def names(services: dict[str, dict]) -> dict[str, str]:
    """DNS name (service name or network alias) -> service."""
    found = {}
    for name, service in services.items():
        for alias in [name, *service.get("networks", {}).get("default", {}).get("aliases", [])]:
            assert alias not in found, f"{alias} answered by {found[alias]} and {name}"
            found[alias] = name
    return found


# --- Lint and schema ----------------------------------------------------------------------


def test_vendored_schema_is_the_one_noted():
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert SCHEMA_SHA256 in (SCHEMA.parent / "README.md").read_text()


HANDWRITTEN_YAML = sorted(
    p for p in DEPLOY.rglob("*.yaml") if "templates" not in p.parts) + [YAMLLINT_CONFIG]


@pytest.mark.parametrize("path", HANDWRITTEN_YAML, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yamllint_is_clean(path):
    config = yamllint.config.YamlLintConfig(file=str(YAMLLINT_CONFIG))
    problems = list(yamllint.linter.run(path.read_text(), config, str(path.relative_to(REPO))))
    assert problems == [], "\n".join(f"{path.name}:{p.line}:{p.column} {p.message}" for p in problems)


def test_yamllint_config_catches_what_it_should():
    config = yamllint.config.YamlLintConfig(file=str(YAMLLINT_CONFIG))
    problems = list(yamllint.linter.run("a: 1\na: 2\nb: yes\n", config))
    assert {p.rule for p in problems} >= {"key-duplicates", "truthy"}
    assert config.is_file_ignored("deploy/helm/synthtune/templates/vllm.yaml")


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_compose_file_matches_the_spec_before_and_after_interpolation(validator):
    for model in (raw(), resolved()):
        errors = sorted(validator.iter_errors(model), key=lambda e: list(e.path))
        assert errors == [], "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_check_does_reject_a_misspelt_key(validator):
    model = resolved()
    model["services"]["datagen"]["depends_onn"] = {}
    assert not validator.is_valid(model)


def test_every_variable_has_a_default_or_an_env_example_line():
    referenced = variables(None)
    listed = env_example()
    for name, op in referenced.items():
        assert op in (":-", "-") or name in listed, f"{name} is neither defaulted nor in .env.example"
    required = {name for name, op in referenced.items() if op in (":?", "?")}
    assert required == {"SYNTHTUNE_GRPC_TOKEN", "POSTGRES_PASSWORD", "DJANGO_SECRET_KEY"}
    env = filled_env()
    del env["POSTGRES_PASSWORD"]
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        interpolate(raw(), env)


def test_no_secret_is_written_in_the_files():
    for key, value in env_example().items():
        if SECRET_NAME.search(key):
            assert value == "", f".env.example must leave {key} blank"
    for name, service in raw()["services"].items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key):
                # Only interpolated: the value comes from .env, never from this file.
                literal = _VARIABLE.sub("", value)
                assert "${" in value and not re.search(r"[A-Za-z0-9]{12,}", literal.split("@")[0]), (name, key)


# --- Semantics, per profile ----------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_has_one_trainer_and_one_vllm_and_resolvable_dependencies(profile):
    model = resolved()
    services = active(model, profile)
    dns = names(services)
    assert {"trainer", "vllm", "postgres", "datagen", "serving-proxy"} <= set(dns)
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            if target not in services:
                assert condition.get("required") is False, f"{name} needs {target}, absent in {profile}"
                assert target in model["services"], f"{name} depends on unknown {target}"
                continue
            if condition["condition"] == "service_healthy":
                assert _has_healthcheck(services[target]), f"{name} waits for {target}'s health, it has none"


def _has_healthcheck(service: dict) -> bool:
    check = service.get("healthcheck")
    if check:
        return not check.get("disable", False)
    build = service.get("build")
    return bool(build) and "HEALTHCHECK" in (REPO / build["dockerfile"]).read_text()


def test_migrations_run_after_the_database_and_before_the_control_plane():
    services = resolved()["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "migrate" in " ".join(services["migrate"]["command"])
    assert services["migrate"]["restart"] == "no"
    for name in ("control-plane", "worker", "datagen", "serving-proxy", "trainer", "trainer-gpu", "vllm-cpu",
                 "vllm-gpu"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    # The worker is the control plane's image with another command.
    assert services["worker"]["image"] == services["control-plane"]["image"]
    assert services["worker"]["command"] == ["python", "-m", "control_plane", "worker"]


def test_synthtune_services_share_the_data_volume_hardened():
    model = resolved()
    for name in SYNTHTUNE_SERVICES:
        service = model["services"][name]
        assert service["user"] == "10001:10001" and service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"], name
        assert "/tmp" in service["tmpfs"], name
        expected = "data:/data:ro" if name == "serving-proxy" else "data:/data"  # the proxy only reads
        assert expected in service["volumes"], name
        assert env_of(service)["SYNTHTUNE_DATA_ROOT"] == "/data"
        assert env_of(service)["SYNTHTUNE_METRICS_PORT"] == "9090"
    assert set(model["volumes"]) >= {"data", "pgdata"}


@pytest.mark.parametrize("vllm_name", ["vllm-cpu", "vllm-gpu"])
def test_vllm_sees_adapters_read_only_where_the_proxy_says_and_has_its_rank(vllm_name):
    services = resolved()["services"]
    proxy = env_of(services["serving-proxy"])
    vllm = services[vllm_name]
    (mount,) = [m for m in vllm["volumes"] if isinstance(m, dict) and m["source"] == "data"]
    assert mount["target"] == proxy["SYNTHTUNE_VLLM_ADAPTER_ROOT"]
    assert mount["read_only"] is True and mount["volume"]["subpath"] == "adapters"
    args = vllm["command"]
    assert "--enable-lora" in args
    assert args[args.index("--max-lora-rank") + 1] == proxy["SYNTHTUNE_VLLM_MAX_LORA_RANK"]
    assert env_of(vllm)["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert proxy["SYNTHTUNE_VLLM_URL"] == f"http://vllm:{args[args.index('--port') + 1]}"
    assert "vllm" in vllm["networks"]["default"]["aliases"]


def test_the_control_plane_reaches_each_service_where_it_listens():
    model = resolved()
    for profile in PROFILES:
        services = active(model, profile)
        dns = names(services)
        for client in ("control-plane", "worker"):
            client_env = env_of(services[client])
            for variable, listen_var in (("SYNTHTUNE_DATAGEN_ADDR", "SYNTHTUNE_DATAGEN_LISTEN"),
                                         ("SYNTHTUNE_TRAINER_ADDR", "SYNTHTUNE_TRAINER_LISTEN"),
                                         ("SYNTHTUNE_SERVING_PROXY_ADDR", "SYNTHTUNE_SERVING_PROXY_LISTEN")):
                host, port = client_env[variable].rsplit(":", 1)
                listen = env_of(services[dns[host]])[listen_var]
                assert listen == f"[::]:{port}", (profile, variable, listen)
        database = env_of(services["control-plane"])["DATABASE_URL"]
        assert "@postgres:5432/" in database and env_of(services["postgres"])["POSTGRES_PASSWORD"] in database


def test_images_are_built_here_or_pinned_by_digest():
    for name, service in resolved()["services"].items():
        if "build" in service:
            assert (REPO / service["build"]["dockerfile"]).is_file(), name
            assert (COMPOSE_DIR / service["build"]["context"]).resolve() == REPO, name
        else:
            assert re.search(r":[\w.-]+@sha256:[0-9a-f]{64}$", service["image"]), name


def test_only_the_control_plane_is_published_and_only_on_loopback():
    published = {name: s["ports"] for name, s in resolved()["services"].items() if s.get("ports")}
    assert list(published) == ["control-plane"]
    assert published["control-plane"] == ["127.0.0.1:8080:8080"]


def test_worker_health_checks_its_metrics_port():
    worker = resolved()["services"]["worker"]
    port = env_of(worker)["SYNTHTUNE_METRICS_PORT"]
    assert f"http://127.0.0.1:{port}/metrics" in worker["healthcheck"]["test"]
