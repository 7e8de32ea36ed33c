import os

import pytest

from synthtune.errors import InvalidArgument
from synthtune.paths import resolve_under, validate_name


@pytest.mark.parametrize("name", ["support-v1", "a", "my_data.2024", "X9"])
def test_plain_names_pass(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "../etc", "a/b", "/abs", "a\\b", ".hidden", "x..y", "a b", "é"])
def test_unsafe_names_are_refused_with_the_field(name):
    with pytest.raises(InvalidArgument) as info:
        validate_name(name, field="dataset_name")
    assert info.value.field == "dataset_name"
    assert "dataset_name" in info.value.message


def test_resolve_under_accepts_nested_relative_paths(tmp_path):
    assert resolve_under(tmp_path, "datasets/a.jsonl") == (tmp_path / "datasets/a.jsonl").resolve()


@pytest.mark.parametrize("rel", ["/etc/passwd", "../x", "datasets/../../x", "C:/x", "a\\..\\b", ""])
def test_resolve_under_refuses_escapes(tmp_path, rel):
    with pytest.raises(InvalidArgument):
        resolve_under(tmp_path, rel)


@pytest.mark.parametrize("rel", ["datasets/" + "x" * 256 + ".jsonl", "é" * 128 + "/a.jsonl", "x" * 300])
def test_resolve_under_refuses_names_the_file_system_cannot_hold(tmp_path, rel):
    # The gRPC fuzz found it: ENAMETOOLONG at the caller's first stat was an OSError, so INTERNAL.
    with pytest.raises(InvalidArgument) as info:
        resolve_under(tmp_path, rel, field="dataset_path")
    assert info.value.field == "dataset_path" and "255 bytes" in info.value.message
    assert resolve_under(tmp_path, "x" * 255) == (tmp_path / ("x" * 255)).resolve()


def test_resolve_under_refuses_symlink_escape(tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(InvalidArgument, match="outside"):
        resolve_under(root, "link/file")
