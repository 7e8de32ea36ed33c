"""`make up`: run every implemented service, Django and the worker until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading

from synthtune.stack import Stack, StackConfig, implemented_services


def main() -> int:
    config = StackConfig()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with Stack(config) as stack:
        print("\nsynthtune is up (Ctrl-C stops everything):")
        print(f"  admin     {config.http_url}/admin/")
        print(f"  REST API  {config.http_url}/api/v1/   (docs: {config.http_url}/api/docs/)")
        env = stack.env()
        for name, _, listen_var, _, _ in implemented_services():
            print(f"  gRPC {name:<13} {env[listen_var]}")
        for name, url in config.metrics_urls().items():
            print(f"  metrics {name:<10} {url}")
        print(f"  data root {config.data_root.resolve()}\n"
              "  create a login with: .venv/bin/python -m control_plane createsuperuser\n", flush=True)
        try:
            while not stopping.wait(0.5):
                dead = [name for name, proc in stack.procs if proc.poll() is not None]
                if dead:
                    print(f"stopping: {', '.join(dead)} exited", file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
        print("\nstopping...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
