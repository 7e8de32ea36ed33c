"""The distilabel side of the datagen_vs_distilabel bench: a worker process that runs pipelines on request.

`python -m bench.distilabel_side` imports distilabel once, then reads one JSON request per
line on stdin ({"name", "base_url", "model", "instructions", "concurrency", "max_tokens",
"timeout_s", "max_retries"}) and answers each with one JSON line ({"seconds", "rows"} or
{"error"}) on the stdout it was started with. Everything the libraries print goes to stderr instead, so their
logs can't corrupt the answers.

Per request: the pipeline is built (not timed), then `pipeline.run(use_cache=False)` is timed
until it returns the Distiset, i.e. until the rows are written to the cache folder as parquet
and read back. That call includes distilabel's per-run work: forking the step processes,
loading the steps (it polls their status every 2.5 s), the batch flow and writing the data.

Imports only the standard library and distilabel, so it can run from any interpreter that
has distilabel. The caller sets DISTILABEL_CACHE_DIR and HF_HOME to a temporary folder.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import time


def _loopback_only(event: str, args: tuple) -> None:
    """Audit hook: refuse DNS look-ups and connections to anything but loopback (forked children inherit it)."""
    if event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode()
        if host not in (None, "localhost") and not _is_loopback(host):
            raise PermissionError(f"bench: distilabel may reach only the local endpoint, not {host!r}")
    elif event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise PermissionError(f"bench: distilabel may reach only the local endpoint, not {address!r}")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run(request: dict) -> dict:
    from distilabel.models import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    instructions = request["instructions"]
    with Pipeline(name=request["name"]) as pipeline:
        # One generator batch holding every row: with batch_size == input_batch_size the
        # generator waits for each batch to come back before sending the next (~0.45 s a
        # batch instead of ~0.27 s at 100 ms latency), so this is distilabel's faster setting.
        load = LoadDataFromDicts(data=[{"instruction": text} for text in instructions], batch_size=len(instructions))
        generate = TextGeneration(
            llm=OpenAILLM(
                base_url=request["base_url"],
                api_key="bench-not-a-key",
                model=request["model"],
                timeout=request["timeout_s"],
                max_retries=request["max_retries"],
                generation_kwargs={"max_new_tokens": request["max_tokens"]},
            ),
            # AsyncLLM.generate gathers one batch's requests at once: this is the number in flight.
            input_batch_size=request["concurrency"],
        )
        load >> generate
    started = time.perf_counter()
    distiset = pipeline.run(use_cache=False)
    seconds = time.perf_counter() - started
    rows = distiset["default"]["train"]
    empty = sum(1 for row in rows if not isinstance(row["generation"], str) or not row["generation"])
    if len(rows) != len(instructions) or empty:
        return {"error": f"distilabel returned {len(rows)} rows for {len(instructions)} instructions, {empty} empty"}
    return {"seconds": seconds, "rows": len(rows)}


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library prints and rich logs go to stderr from here on
    sys.stdout = sys.stderr
    sys.addaudithook(_loopback_only)
    os.environ.setdefault("DISTILABEL_LOG_LEVEL", "WARNING")  # per-request INFO lines cost distilabel CPU
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"

    try:
        import distilabel.distiset
        from distilabel.models import OpenAILLM  # noqa: F401 - the one-time import, before any timed run
        from distilabel.pipeline import Pipeline  # noqa: F401
    except ImportError as exc:
        answers.write(json.dumps({"error": f"{exc} in {sys.executable}: `make bench` installs the bench extra"}) + "\n")
        return

    # At the end of every run distilabel looks up BibTeX for the steps' arXiv references on a web
    # service (when bs4 is installed); the bench must not touch the network, and it isn't the work measured.
    distilabel.distiset._grab_citations = lambda dag: []

    answers.write(json.dumps({"ready": distilabel.__version__}) + "\n")
    for line in sys.stdin:
        try:
            answer = _run(json.loads(line))
        except Exception as exc:  # report, don't die: the caller shows it and stops the bench
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
