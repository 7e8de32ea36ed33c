"""Container health check shipped in every synthtune image (Docker HEALTHCHECK, compose).

    python /usr/local/bin/synthtune-healthcheck grpc --listen-env SYNTHTUNE_DATAGEN_LISTEN
    python /usr/local/bin/synthtune-healthcheck grpc --address 127.0.0.1:50051
    python /usr/local/bin/synthtune-healthcheck http http://127.0.0.1:8080/healthz

Exit 0 when the standard grpc.health.v1 service answers SERVING (or the URL
answers 2xx), 1 otherwise, with the reason on stderr. Kubernetes does not need
this: the chart uses the kubelet's native gRPC probes.

`--listen-env` reads the address the service binds from the same variable the
service reads, so changing the port in the environment keeps the check right.
A wildcard host ([::], 0.0.0.0) is checked on loopback. The check speaks
plaintext gRPC, like the kubelet's probe: with SYNTHTUNE_GRPC_TLS_* set,
override the health check (see deploy/README.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

_WILDCARDS = {"", "0.0.0.0", "[::]", "::", "*"}


def probe_address(listen: str) -> str:
    """The address to dial for a server bound to `listen` (host:port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{listen!r} is not host:port")
    return f"127.0.0.1:{port}" if host in _WILDCARDS else listen


def check_grpc(address: str, timeout_s: float) -> str | None:
    """None when SERVING, else why not."""
    import grpc  # here, so `http` checks do not pay for the import
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            return f"{address}: {exc.code().name}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def check_http(url: str, timeout_s: float) -> str | None:
    """None when GET `url` answers 2xx, else why not."""
    # Django checks ALLOWED_HOSTS; localhost is in every sensible list, a pod IP is not.
    request = urllib.request.Request(url, headers={"Host": "localhost"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        return f"{url}: {exc}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthtune-healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    sub = parser.add_subparsers(dest="kind", required=True)
    grpc_parser = sub.add_parser("grpc", help="grpc.health.v1 Check, overall server status")
    target = grpc_parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--listen-env", metavar="VAR", help="variable holding the service's listen address")
    target.add_argument("--address", help="host:port to dial")
    http_parser = sub.add_parser("http", help="GET a URL, expect 2xx")
    http_parser.add_argument("url")
    args = parser.parse_args(argv)

    try:
        if args.kind == "http":
            problem = check_http(args.url, args.timeout)
        else:
            if args.listen_env:
                listen = os.environ.get(args.listen_env, "")
                if not listen:
                    print(f"unhealthy: {args.listen_env} is not set", file=sys.stderr)
                    return 1
                address = probe_address(listen)
            else:
                address = args.address
            problem = check_grpc(address, args.timeout)
    except ValueError as exc:
        problem = str(exc)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
