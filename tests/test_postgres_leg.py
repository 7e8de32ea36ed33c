"""The PostgreSQL leg's own logic (tests/support/postgres.py): finding a server, and what a
machine without one gets: one clear skip, or a failure under SYNTHTUNE_REQUIRE_SYSTEM_DEPS=1."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.postgres import BINDIR_VAR, SQLITE_ONLY, Unavailable, database_url, find_bindir
from tests.support.procs import REPO


def test_an_override_without_a_server_is_unavailable_and_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv(BINDIR_VAR, str(tmp_path))
    with pytest.raises(Unavailable, match=f"\\${BINDIR_VAR}={tmp_path}"):
        find_bindir()


def _leg_without_postgres(tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.postgres", "tests/control_plane/test_config.py",
         "-p", "no:cacheprovider"],
        cwd=REPO, env={**os.environ, BINDIR_VAR: str(tmp_path), **env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_without_postgres_the_leg_is_one_skip_with_the_reason(tmp_path):
    done = _leg_without_postgres(tmp_path, SYNTHTUNE_REQUIRE_SYSTEM_DEPS="0")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 skipped" in done.stdout and "deselected" in done.stdout and " passed" not in done.stdout
    assert re.search(r"SKIPPED \[1\] \S+: PostgreSQL leg skipped: no initdb", done.stdout), done.stdout[-3000:]


def test_without_postgres_the_leg_fails_when_system_deps_are_required(tmp_path):
    done = _leg_without_postgres(tmp_path, SYNTHTUNE_REQUIRE_SYSTEM_DEPS="1")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "FAILED tests/support/postgres.py::postgresql-leg" in done.stdout
    assert "SYNTHTUNE_REQUIRE_SYSTEM_DEPS=1 forbids skipping" in done.stdout


def test_database_url_names_the_test_database():
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/x/test-control_plane.sqlite3"}
    assert database_url(sqlite) == "sqlite:////x/test-control_plane.sqlite3"
    pg = {"ENGINE": "django.db.backends.postgresql", "NAME": "test_synthtune", "USER": "u", "PASSWORD": "p@ss",
          "HOST": "127.0.0.1", "PORT": 5433}  # fmt: skip
    assert database_url(pg) == "postgres://u:p%40ss@127.0.0.1:5433/test_synthtune"


def test_every_test_left_to_sqlite_still_exists():
    """Each entry names a collected test; after a rename it would silently stop applying."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/control_plane"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    collected = {line.split("[")[0] for line in done.stdout.splitlines()} | set(done.stdout.splitlines())
    assert set(SQLITE_ONLY) <= collected, set(SQLITE_ONLY) - collected
