"""Generate the Python stubs from protos/ (run by `make protos`).

Protos live at protos/synthtune/<domain>/v1/, mirroring the package, so the
generated `from synthtune.<domain>.v1 import ...` imports resolve.
`generate(out_dir)` is also used by the test that fails when stubs are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto into out_dir."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for proto in files:
        package_dir = out_dir / Path(proto).parent
        for folder in [package_dir, *package_dir.parents]:
            if folder == out_dir or out_dir not in folder.parents:
                break
            (folder / "__init__.py").touch()


if __name__ == "__main__":
    generate(REPO)
    print(f"generated stubs for {len(proto_files())} proto file(s)", file=sys.stderr)
