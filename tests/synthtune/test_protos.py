"""The committed stubs must equal what `make protos` generates now."""

from pathlib import Path

from synthtune.protogen import REPO, generate, proto_files


def test_generated_stubs_are_not_stale(tmp_path: Path):
    generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    assert generated, "protoc produced nothing"
    stale = [str(rel) for rel in generated if (REPO / rel).read_bytes() != (tmp_path / rel).read_bytes()]
    assert not stale, f"stubs are stale, run `make protos`: {stale}"


def test_every_proto_lives_under_its_package_path():
    for proto in proto_files():
        package_line = next(line for line in proto.read_text().splitlines() if line.startswith("package "))
        package = package_line.removeprefix("package ").rstrip(";").strip()
        assert proto.parent.relative_to(REPO / "protos").as_posix() == package.replace(".", "/")
