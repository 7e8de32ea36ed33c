"""A small client for the control plane's REST API, used by the demo and the CLI.

Errors come back as ApiError carrying the API's one error body
({"message", "code", "extra"}) and the HTTP status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str = "", extra: dict | None = None):
        super().__init__(f"{status} {code}: {message}" if code else f"{status}: {message}")
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


@dataclass(frozen=True)
class SseEvent:
    id: int
    event: str
    data: dict[str, Any]


class Client:
    """Token-authenticated calls to `base_url` (e.g. http://127.0.0.1:8000)."""

    def __init__(self, base_url: str, *, token: str, timeout_s: float = 30.0):
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Token {token}"},
            timeout=timeout_s,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs) -> Any:
        try:
            reply = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(503, f"control plane unreachable at {self._http.base_url}: {exc}") from exc
        if reply.status_code >= 400:
            try:
                body = reply.json()
            except ValueError:
                body = {"message": reply.text[:500]}
            raise ApiError(reply.status_code, body.get("message", ""), body.get("code", ""), body.get("extra"))
        if reply.headers.get("content-type", "").startswith("application/json"):
            return reply.json()
        return reply.text

    # --- datasets and generation ---------------------------------------------------

    def generate_dataset(self, **fields: Any) -> dict:
        return self.request("POST", "/api/v1/generation-jobs/", json=fields)

    def curate_dataset(self, name: str, **fields: Any) -> dict:
        """Start filtering dataset `name` into a new version; fields: name (the new one's),
        filters, num_rows. Returns the job."""
        return self.request("POST", f"/api/v1/datasets/{quote(name, safe='')}/curate/", json=fields)

    def resume_generation(self, job_id: str, *, token: str = "", judge_token: str = "") -> dict:
        """Continue a cancelled or failed generation job; the tokens again (they were never stored)."""
        body = {key: value for key, value in {"token": token, "judge_token": judge_token}.items() if value}
        return self.request("POST", f"/api/v1/generation-jobs/{job_id}/resume/", json=body)

    def generation_job(self, job_id: str) -> dict:
        return self.request("GET", f"/api/v1/generation-jobs/{job_id}/")

    def dataset(self, name: str) -> dict:
        return self.request("GET", f"/api/v1/datasets/{name}/")

    def preview(self, name: str, *, limit: int = 5) -> dict:
        return self.request("GET", f"/api/v1/datasets/{name}/preview/", params={"limit": limit})

    def dataset_rows(self, name: str, *, format: str = "instruction") -> list[dict]:
        """Every row of a dataset, in `format` ("instruction" or "chat")."""
        text = self.request("GET", f"/api/v1/datasets/{name}/download/", params={"format": format})
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def upload_rows(self, name: str, rows: list[dict]) -> dict:
        """A new dataset `name` from rows (validated by the server like any upload)."""
        return self.request("POST", "/api/v1/datasets/", json={"name": name, "rows": rows})

    # --- dataset versions ---

    def dataset_lineage(self, name: str) -> dict:
        """{"dataset", "ancestors" (root first), "children", "inputs" (a merge's sources)}."""
        return self.request("GET", f"/api/v1/datasets/{quote(name, safe='')}/lineage/")

    def dataset_diff(self, old: str, new: str, *, examples: int = 5) -> dict:
        """How `new` differs from `old` ("name" or "name@N"): added/removed/changed counts and examples."""
        params = {"against": old, "examples": examples}
        return self.request("GET", f"/api/v1/datasets/{quote(new, safe='')}/diff/", params=params)

    def merge_datasets(self, sources: Sequence[str], *, name: str | None = None, dedupe: bool = True) -> dict:
        """A new version of the first source holding every source's rows; returns the dataset."""
        body: dict[str, Any] = {"sources": list(sources), "dedupe": dedupe}
        if name:
            body["name"] = name
        return self.request("POST", "/api/v1/dataset-merges/", json=body)

    def new_dataset_version(self, parent: str, content: bytes, *, name: str | None = None) -> dict:
        """A new version of `parent` ("name" or "name@N") from JSONL bytes (an edit); returns it."""
        ref, _, version = parent.partition("@")
        data = {key: value for key, value in {"name": name, "version": version}.items() if value}
        return self.request(
            "POST", f"/api/v1/datasets/{quote(ref, safe='')}/versions/",
            files={"file": ("rows.jsonl", content)}, data=data,
        )

    def follow_generation(self, job_id: str) -> Iterator[SseEvent]:
        """Every event of a generation job until it ends, reconnecting as the server asks."""
        yield from self._follow(
            f"/api/v1/generation-jobs/{job_id}/events/stream/", state=lambda: self.generation_job(job_id)["state"]
        )

    # --- fine-tuning runs and adapters ------------------------------------------------

    def start_run(
        self,
        *,
        datasets: list[str],
        base_model: str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        adapter_name: str = "",
        merge_full_model: bool = False,
        eval_datasets: list[str] | None = None,
    ) -> dict:
        """Start a LoRA fine-tune on `datasets` (names); unset hyperparameters take the trainer's defaults.
        `eval_datasets` (names): evaluate on exactly these rows instead of holding eval_fraction out."""
        body: dict[str, Any] = {
            "datasets": datasets,
            "hyperparameters": hyperparameters or {},
            "adapter_name": adapter_name,
            "merge_full_model": merge_full_model,
        }
        if eval_datasets:
            body["eval_datasets"] = list(eval_datasets)
        if base_model:
            body["base_model"] = base_model
        return self.request("POST", "/api/v1/runs/", json=body)

    def run(self, run_id: str) -> dict:
        return self.request("GET", f"/api/v1/runs/{run_id}/")

    def runs(self, **filters: str) -> list[dict]:
        """The first page of runs, newest first; filters: state, base_model, dataset, owner."""
        return self.request("GET", "/api/v1/runs/", params=filters)["results"]

    def cancel_run(self, run_id: str) -> dict:
        return self.request("POST", f"/api/v1/runs/{run_id}/cancel/")

    def resume_run(self, run_id: str) -> dict:
        return self.request("POST", f"/api/v1/runs/{run_id}/resume/")

    def run_events(self, run_id: str, *, after_seq: int = 0, types: list[str] | None = None) -> dict:
        params: dict[str, Any] = {"after_seq": after_seq}
        if types:
            params["type"] = types
        return self.request("GET", f"/api/v1/runs/{run_id}/events/", params=params)

    def follow_run(self, run_id: str) -> Iterator[SseEvent]:
        """Every event of a run (state, step metrics, eval, logs, export) until it ends."""
        yield from self._follow(f"/api/v1/runs/{run_id}/events/stream/", state=lambda: self.run(run_id)["state"])

    def adapters(self, **filters: str) -> list[dict]:
        """The first page of adapters, newest first; filters: base_model, run, search."""
        return self.request("GET", "/api/v1/adapters/", params=filters)["results"]

    def adapter(self, name: str) -> dict:
        return self.request("GET", f"/api/v1/adapters/{name}/")

    def adapter_manifest(self, name: str) -> dict:
        """The adapter's manifest.json as exported (lineage: run, base model, datasets, metrics)."""
        return self.request("GET", f"/api/v1/adapters/{name}/manifest/")

    # --- serving: deployments into vLLM and comparisons ----------------------------------
    # `token` is vLLM's API key (if it has one): sent along, never stored by the control plane.

    def load_adapter(self, name: str, *, targets: Sequence[str] = (), token: str = "") -> dict:
        """Hot-load adapter `name` into vLLM (the proxy's replicas, or `targets`): served name,
        deployments and a result per replica."""
        body: dict[str, Any] = {"targets": list(targets)}
        if token:
            body["token"] = token
        return self.request("POST", f"/api/v1/adapters/{quote(name, safe='')}/load/", json=body)

    def unload_adapter(self, name: str, *, token: str = "") -> dict:
        """Unload every loaded deployment of adapter `name`."""
        body = {"token": token} if token else {}
        return self.request("POST", f"/api/v1/adapters/{quote(name, safe='')}/unload/", json=body)

    def unload_deployment(self, deployment_id: int, *, token: str = "") -> dict:
        body = {"token": token} if token else {}
        return self.request("POST", f"/api/v1/deployments/{deployment_id}/unload/", json=body)

    def deployments(self, **filters: Any) -> list[dict]:
        """The first page of deployments, checked against vLLM; filters: state, adapter, target."""
        return self.request("GET", "/api/v1/deployments/", params=filters)["results"]

    def deployment(self, deployment_id: int) -> dict:
        return self.request("GET", f"/api/v1/deployments/{deployment_id}/")

    def served_models(self, *targets: str, token: str = "") -> list[dict]:
        """What each vLLM serves now (none named: the proxy's targets)."""
        headers = {"X-Vllm-Token": token} if token else {}
        reply = self.request("GET", "/api/v1/served-models/", params={"target": list(targets)}, headers=headers)
        return reply["targets"]

    def compare(
        self, *, adapter: str, prompt: str, sampling: dict[str, Any] | None = None, **fields: Any
    ) -> dict:
        """Base and adapter outputs for `prompt`, side by side (greedy unless `sampling` says
        otherwise); fields: system_prompt, served_name, target, token."""
        body = {"adapter": adapter, "prompt": prompt, "sampling": sampling or {}, **fields}
        return self.request("POST", "/api/v1/compare/", json=body)

    def compare_batch(
        self, *, adapter: str, limit: int = 20, dataset: str = "", sampling: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict:
        """Base vs adapter over held-out rows (the adapter's eval split, or `dataset`): rows and
        a summary, once the batch is done."""
        body = {"adapter": adapter, "limit": limit, "dataset": dataset, "sampling": sampling or {}, **fields}
        return self.request("POST", "/api/v1/compare/batch/", json=body)

    def stream_compare_batch(
        self, *, adapter: str, limit: int = 20, dataset: str = "", sampling: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Iterator[SseEvent]:
        """The same batch, event by event as rows are compared: "row"..., "summary", "comparison";
        a failure midway raises ApiError."""
        body = {"adapter": adapter, "limit": limit, "dataset": dataset, "sampling": sampling or {}, **fields}
        headers = {"Accept": "text/event-stream"}
        timeout = httpx.Timeout(30.0, read=None)
        with self._http.stream("POST", "/api/v1/compare/batch/", json=body, headers=headers, timeout=timeout) as reply:
            if reply.status_code >= 400:
                reply.read()
                error = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
                raise ApiError(reply.status_code, error.get("message", reply.text[:500]), error.get("code", ""),
                               error.get("extra"))
            for event in parse_sse(reply.iter_lines()):
                if event.event == "error":
                    raise ApiError(500, event.data.get("message", ""), event.data.get("code", ""),
                                   event.data.get("extra"))
                yield event

    def _follow(self, stream_path: str, *, state) -> Iterator[SseEvent]:
        # The server ends each stream after a while (and answers 204 once the job is over);
        # like EventSource, reconnect with Last-Event-ID until a terminal state arrives.
        after_seq = 0
        while True:
            got_any = False
            for event in self.stream_events(stream_path, after_seq=after_seq):
                got_any = True
                after_seq = event.id or after_seq
                yield event
                if event.event == "state_changed" and event.data.get("payload", {}).get("state") in TERMINAL_STATES:
                    return
            if not got_any and state() in TERMINAL_STATES:
                return

    def stream_events(self, path: str, *, after_seq: int = 0) -> Iterator[SseEvent]:
        """Events of one SSE response (the server closes it after a while, or at the end)."""
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after_seq)}
        with self._http.stream("GET", path, headers=headers, timeout=httpx.Timeout(30.0, read=None)) as reply:
            if reply.status_code == 204:
                return
            if reply.status_code >= 400:
                reply.read()
                body = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
                raise ApiError(reply.status_code, body.get("message", reply.text[:500]), body.get("code", ""))
            yield from parse_sse(reply.iter_lines())


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Parse SSE lines into events; comments (keep-alives) are skipped."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield SseEvent(int(fields.get("id", 0) or 0), fields.get("event", "message"), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            # A multi-line data field is joined with newlines (SSE spec).
            fields[key] = f"{fields[key]}\n{value}" if key == "data" and key in fields else value
