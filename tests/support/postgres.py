"""The PostgreSQL leg: the control-plane tests again, on a throwaway PostgreSQL server.

    python -m pytest -p tests.support.postgres tests/control_plane

(`make test` runs this after the main SQLite run; SQLITE_ONLY below lists what the leg leaves
to SQLite, and `--pg-all` runs those too.) The plugin initdb's a cluster in a
temporary folder, starts it on a free loopback port (socket in the same folder, trust
auth, fsync off), points DATABASE_URL at it and stops and deletes it at the end, also
when tests fail or the run is interrupted. pytest-django then creates its `test_` database
there as usual, and processes the tests start inherit DATABASE_URL.

Why a `-p` plugin and not a conftest: pytest-django imports the Django settings (which
read DATABASE_URL once) in `pytest_load_initial_conftests`, before any conftest.py is
loaded, so the server must be up and the variable set by then.

Finding the server: $SYNTHTUNE_PG_BINDIR if set (only there), else `pg_config --bindir`,
else the newest /usr/lib/postgresql/*/bin, else initdb on PATH. Without one, the session
runs a single item that skips with the reason, or fails when
SYNTHTUNE_REQUIRE_SYSTEM_DEPS=1, as for Chromium. initdb and pg_ctl refuse to run as
root, so as root the server runs as the `postgres` user (Debian's package creates it),
else as `nobody`.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

BINDIR_VAR = "SYNTHTUNE_PG_BINDIR"
SUPERUSER = "synthtune"
# Left to the SQLite run, to keep the leg to a few minutes (`--pg-all` runs them too): they test
# vLLM, the trainer or the browser rather than the database, and the database paths they pass
# through are covered by other tests that do run on PostgreSQL.
SQLITE_ONLY_MARKERS = {"browser": "a whole stack in Chromium; the same services run through the API tests"}
SQLITE_ONLY = {
    "tests/control_plane/test_contract.py::test_every_operation_keeps_the_contract":
        "schemathesis for minutes against a whole stack; the contract is the schema's, not the database's",
    "tests/control_plane/openai_api/test_sdk_e2e.py::test_an_openai_fine_tuning_script_runs_unchanged_against_synthtune":
        "a vLLM of its own and a whole stack; the /v1/ DB paths run in test_files and test_jobs",
    "tests/control_plane/deployments/test_api.py::test_a_restarted_vllm_shows_its_deployments_as_lost":
        "restarts a vLLM of its own; 'lost' is covered by test_services' unreachable-vLLM test",
    "tests/control_plane/deployments/test_api.py::test_a_vllm_without_the_runtime_lora_flag_is_400_failed_precondition":
        "starts a vLLM of its own to check vLLM's answer",
    "tests/control_plane/runs/test_api.py::test_fine_tune_end_to_end[tiny-llama]":
        "a second architecture; the tiny-phi3 case runs",
    "tests/control_plane/runs/test_api.py::test_the_trainers_validation_is_400_with_api_field_names":
        "the trainer's own checks; nothing is written",
    "tests/control_plane/runs/test_worker.py::test_follow_resumes_after_the_last_stored_seq":
        "a second training; resuming is covered by the datagen worker test and the worker-process run test",
    "tests/control_plane/runs/test_api.py::test_a_killed_run_fails_then_resumes_by_request_and_succeeds":
        "the trainer's resume; the resume service's writes are covered by the refused and trainer-down tests",
    "tests/control_plane/runs/test_api.py::test_an_unknown_base_model_or_a_changed_dataset_file_is_refused_naming_the_field":
        "the trainer's own check; nothing is written",
    "tests/control_plane/runs/test_api.py::test_several_processes_on_a_one_process_trainer_is_400_naming_the_field":
        "the trainer's own check; nothing is written",
    "tests/control_plane/deployments/test_judge.py::test_bad_judge_input_is_400_naming_the_field":
        "the serializer's and the proxy's checks; nothing is written",
    "tests/control_plane/deployments/test_judge.py::test_the_cli_table_shows_the_verdicts_and_the_judge_summary":
        "the CLI's rendering of the REST answer; the judged batch's DB writes run in the API test",
}  # fmt: skip
_INSTALL_HINT = "install Debian's postgresql package (.ci/run does)"
_UNAVAILABLE = pytest.StashKey[str]()
_CLUSTER = pytest.StashKey["Cluster"]()
_RUNNING: Cluster | None = None  # the leg's server, for restart_server()


class Unavailable(Exception):
    """No usable PostgreSQL here: the leg is skipped (or failed under SYNTHTUNE_REQUIRE_SYSTEM_DEPS=1)."""


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres, or Unavailable saying where it looked."""
    override = os.environ.get(BINDIR_VAR)
    if override:
        if _has_server(Path(override)):
            return Path(override)
        raise Unavailable(f"no initdb, pg_ctl and postgres in ${BINDIR_VAR}={override}")
    candidates = []
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if _has_server(bindir):
            return bindir
    raise Unavailable(
        "initdb not found (looked at pg_config --bindir, /usr/lib/postgresql/*/bin and PATH); " + _INSTALL_HINT
    )


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: us, or as root an unprivileged user (initdb and pg_ctl refuse root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise Unavailable("running as root and there is no postgres or nobody user to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """A private PostgreSQL server in a temporary folder; `stop()` is idempotent."""

    bindir: Path
    user: pwd.struct_passwd | None
    base: Path = field(init=False)
    port: int = 0
    version: str = ""
    started_s: float = 0.0

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def url(self, dbname: str = SUPERUSER) -> str:
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        demote = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []} if self.user else {}
        return subprocess.run(
            argv, cwd=self.base, capture_output=True, text=True, timeout=120, check=False, **demote
        )

    def start(self) -> Cluster:
        self.base = Path(tempfile.mkdtemp(prefix="synthtune-pg-"))
        try:
            if self.user:
                os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
            done = self._run(
                str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
            self.version = (self.data / "PG_VERSION").read_text().strip()
            for _attempt in range(3):  # the free port may be taken before the server binds it
                self.port = _free_port()
                options = (
                    f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=200"
                    " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                )
                done = self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                    "-o", options, "-w", "-t", "60", "start",
                )  # fmt: skip
                if done.returncode == 0:
                    break
            else:
                log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
                raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}{done.stderr}\n{log}")
            self.execute(f'CREATE DATABASE "{SUPERUSER}"')
        except BaseException:
            self.stop()
            raise
        return self

    def execute(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def restart(self) -> None:
        """Stop the server as a crash would (immediate: no checkpoint, every connection cut) and
        start it again on the same port and data, recovering from its WAL; back when it accepts."""
        done = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-m", "immediate", "-w", "-t", "60", "restart",
        )  # fmt: skip
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl restart failed:\n{done.stdout}{done.stderr}\n{log}")

    def stop(self) -> None:
        if not getattr(self, "base", None) or not self.base.exists():
            return
        if (self.data / "postmaster.pid").exists():
            # Immediate: nothing in it is worth a clean shutdown.
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


# --- pytest hooks (active only with `-p tests.support.postgres`) -----------------


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    try:
        cluster = Cluster(find_bindir(), _server_user())
    except Unavailable as exc:
        early_config.stash[_UNAVAILABLE] = f"PostgreSQL leg skipped: {exc}"
        return
    started = time.monotonic()
    try:
        cluster.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        # Installed but broken is a real error, never a skip.
        raise pytest.UsageError(f"PostgreSQL leg: could not start a server in a temp dir: {exc}") from exc
    atexit.register(cluster.stop)  # in case pytest dies before unconfigure
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # A killed run (a CI timeout) unwinds like Ctrl-C, so the server still goes.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    early_config.add_cleanup(cluster.stop)
    early_config.stash[_CLUSTER] = cluster
    global _RUNNING
    _RUNNING = cluster
    cluster.started_s = time.monotonic() - started
    os.environ["DATABASE_URL"] = cluster.url()


def pytest_report_header(config: pytest.Config) -> str:
    if reason := config.stash.get(_UNAVAILABLE, None):
        return reason
    cluster = config.stash[_CLUSTER]
    return (
        f"PostgreSQL leg: PostgreSQL {cluster.version} from {cluster.bindir} on 127.0.0.1:{cluster.port}"
        f" (started in {cluster.started_s:.1f} s, data in {cluster.base})"
    )


class _LegUnavailable(pytest.Item):
    """Stands in for the whole session when there is no PostgreSQL: one clear skip (or failure)."""

    def __init__(self, *, reason: str, **kwargs):
        super().__init__(**kwargs)
        self.reason = reason

    def runtest(self) -> None:
        from tests.conftest import require_system_dep

        require_system_dep(False, self.reason)

    def reportinfo(self):
        return self.path, None, "PostgreSQL leg"

    def repr_failure(self, excinfo, style=None) -> str:
        return str(excinfo.value)  # the reason is the whole story; no traceback into pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pg-all", action="store_true", help="PostgreSQL leg: also run the tests it leaves to SQLite (SQLITE_ONLY)"
    )


def sqlite_only(item: pytest.Item) -> bool:
    return item.nodeid.split("[")[0] in SQLITE_ONLY or item.nodeid in SQLITE_ONLY or any(
        item.get_closest_marker(name) for name in SQLITE_ONLY_MARKERS
    )


_LEFT_OUT = pytest.StashKey[int]()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = config.stash.get(_UNAVAILABLE, None)
    if reason is None:
        if not config.getoption("pg_all"):
            left_out = [item for item in items if sqlite_only(item)]
            config.stash[_LEFT_OUT] = len(left_out)
            if left_out:
                config.hook.pytest_deselected(items=left_out)
                items[:] = [item for item in items if not sqlite_only(item)]
        return
    config.hook.pytest_deselected(items=list(items))
    here = Path(__file__)
    nodeid = f"{here.relative_to(config.rootpath)}::postgresql-leg" if here.is_relative_to(config.rootpath) else ""
    items[:] = [
        _LegUnavailable.from_parent(session, name="postgresql-leg", path=here, nodeid=nodeid, reason=reason)
    ]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if left_out := config.stash.get(_LEFT_OUT, 0):
        terminalreporter.write_line(
            f"PostgreSQL leg: {left_out} tests left to the SQLite run (SQLITE_ONLY in tests/support/postgres.py;"
            " --pg-all runs them)"
        )


# --- helpers for tests that start processes ------------------------------------


def database_url(database: dict) -> str:
    """A DATABASE_URL for a Django DATABASES entry, e.g. the test database, for processes a test starts."""
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    user = quote(database.get("USER") or "", safe="")
    password = f":{quote(database['PASSWORD'], safe='')}" if database.get("PASSWORD") else ""
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return f"postgres://{user}{password}@{database['HOST']}{port}/{quote(database['NAME'], safe='')}"


def restart_server() -> None:
    """Restart the leg's PostgreSQL server (Cluster.restart); only on the leg."""
    if _RUNNING is None:
        raise RuntimeError("no PostgreSQL server of the leg's to restart (run with -p tests.support.postgres)")
    _RUNNING.restart()


def on_postgres_leg() -> bool:
    """Whether this session runs on the leg's own server (so restart_server() can restart it)."""
    return _RUNNING is not None


@contextmanager
def own_database() -> Iterator[dict[str, str]]:
    """Env for a process group (a whole stack) that needs a database of its own.

    On SQLite: nothing (the stack's data root holds its own file). On PostgreSQL: a fresh
    database on the same server, dropped afterwards, so stacks never share tables.
    """
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield {}
        return
    import psycopg

    name = f"stack_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}"))}
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
