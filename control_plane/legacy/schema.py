"""The old routes in the OpenAPI schema: their JSON bodies as the old clients send them, and their
answers key by key, with the old app's value types (tests/control_plane/legacy/old_app.py cites
the old source for each).

- Bodies: JSON objects, every field optional and nullable (the old app read `data.get(x) or
  default`), except the ones a route refuses to go without (REQUIRED: the old app's "... is
  required" 400s), which are required and not blank.
- Answers: {"status": "success", ...} (the route's own keys); every failure {"status": "error",
  "message"} (LegacyError): 400 for bad input, 502 when something further on failed, 504 when
  /generate_data outlasts its wait; and the framework's own (401/403, 413, 415, 429).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse

from control_plane.core.schema import (
    FIELD_PATCHES,
    FIELD_REPLACEMENTS,
    HTTP_URL,
    LEGACY_ERROR,
    NOT_BLANK,
    TOKEN,
    VLLM_URL,
)
from control_plane.runs.params import _NUMBERS

TAG = "legacy"

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_INT = {"type": "integer"}


def _object(properties: dict[str, Any], *, status: str | None = None) -> dict[str, Any]:
    """An answer with exactly these keys (every one always present)."""
    if status is not None:
        properties = {"status": {"type": "string", "enum": [status]}, **properties}
    return {"type": "object", "properties": properties, "required": list(properties)}


def ok(schema: dict[str, Any], description: str) -> OpenApiResponse:
    return OpenApiResponse(response=schema, description=description)


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response={"$ref": f"#/components/schemas/{LEGACY_ERROR}"}, description=description)


BAD_INPUT = error("Missing or invalid fields (named the old way), unknown files, adapters or served names.")
UPSTREAM = error("Something further on failed: the endpoint, vLLM, a service down, a failed generation.")

# app.py:181, synthetic_data.py:101: file_name, file_path, num_rows (a string); then synthtune's counts.
GENERATE_DATA = _object(
    {
        "meta": _object(
            {
                "file_name": _STRING,
                "file_path": _STRING,
                "num_rows": {"type": "string", "pattern": "^[0-9]+$"},
                "dataset": _STRING,
                "rows_requested": _INT,
                "rows_written": _INT,
                "dropped": _INT,
                "failed": _INT,
                "size_bytes": _INT,
                "sha256": _STRING,
                "job_id": _STRING,
                "model": _STRING,
            }
        )
    },
    status="success",
)
LIST_DATASETS = _object(
    {"files": {"type": "array", "items": _object({"name": _STRING, "size_bytes": _INT, "num_rows": _INT})}},
    status="success",
)
FINETUNE = _object({"job_id": _STRING}, status="started")
FINETUNE_STATUS = {
    "oneOf": [
        {
            **_object(
                {
                    "status": {"type": "string", "enum": ["queued", "running", "done", "error"]},
                    "progress": _STRING,
                    "percent": _INT,
                    "error": _NULLABLE_STRING,
                    "adapter_dir": _NULLABLE_STRING,
                    "output_dir": _STRING,
                    "base_model_id": _STRING,
                }
            ),
        },
        {**_object({}, status="not_found"), "additionalProperties": False},
    ]
}
LIST_EXPORTED_ADAPTERS = _object(
    {"adapters": {"type": "array", "items": _object({"name": _STRING, "path": _STRING})}}, status="success"
)
HOTLOAD_ADAPTER = _object(
    {
        "response": _object({"ok": {"type": "boolean"}, "replicas": {"type": "array", "items": {"type": "object"}}}),
        "adapter_name": _STRING,
        "lora_path": _STRING,
    },
    status="success",
)
UNLOAD_ADAPTER = _object(
    {"response": _object({"ok": {"type": "boolean"}, "target": _STRING, "state": _STRING}), "adapter_name": _STRING},
    status="success",
)
COMPARE = _object({"base": _STRING, "finetuned": _STRING, "prompt_format": _STRING}, status="success")
EVENT_LOG = _object({}, status="ok")
# /event_log takes any body, JSON or not, or none (app.py:73, get_json(silent=True)).
ANY_BODY: dict[str, Any] = {"description": "Any JSON; an object's event and payload are logged."}

_VISIBLE_TOKEN = "^\\s*[!-~]+\\s*$"  # a bearer token that must be given: visible ASCII
# Fields a route refuses to go without: required, not null, not blank.
REQUIRED: dict[str, dict[str, dict[str, Any]]] = {
    "LegacyGenerateDataRequest": {
        "base_url": {"pattern": HTTP_URL, "maxLength": 2048},
        "model": {"pattern": NOT_BLANK, "maxLength": 256},
        "bearer_token": {"pattern": _VISIBLE_TOKEN, "maxLength": 8192, "writeOnly": True},
    },
    "LegacyFinetuneRequest": {
        "selected_files": {"type": "array", "minItems": 1, "items": {"type": "string"}},
    },
    "LegacyHotloadAdapterRequest": {
        "vllm_url": {"pattern": VLLM_URL, "maxLength": 512},
    },
    "LegacyUnloadAdapterRequest": {
        "vllm_url": {"pattern": VLLM_URL, "maxLength": 512},
    },
    "LegacyCompareRequest": {
        "prompt": {"pattern": NOT_BLANK, "maxLength": 16_000},
        "base_url": {"pattern": VLLM_URL, "maxLength": 512},
        "base_model": {"pattern": NOT_BLANK, "maxLength": 256},
    },
}
# Without SYNTHTUNE_DEFAULT_ADAPTER_NAME (the old DEFAULT_ADAPTER_NAME) an adapter must be named.
if not getattr(settings, "SYNTHTUNE_DEFAULT_ADAPTER_NAME", ""):
    _ADAPTER = {"pattern": NOT_BLANK, "maxLength": 256}
    REQUIRED["LegacyHotloadAdapterRequest"]["exported_adapter"] = _ADAPTER
    REQUIRED["LegacyUnloadAdapterRequest"]["adapter_name"] = _ADAPTER
    REQUIRED["LegacyCompareRequest"]["ft_model"] = _ADAPTER
for _component, _fields in REQUIRED.items():
    FIELD_REPLACEMENTS[_component] = {name: {"type": "string", **field} for name, field in _fields.items()}
    FIELD_PATCHES.setdefault(_component, {})[""] = {"required": list(_fields)}
# deployments.apis.SamplingSerializer's ranges; top_p in (0, 1]. Tokens travel as a header.
FIELD_PATCHES["LegacyCompareRequest"].update(
    {
        "max_new_tokens": {"minimum": 1, "maximum": 4096},
        "temperature": {"minimum": 0, "maximum": 2},
        "top_p": {"exclusiveMinimum": True, "minimum": 0, "maximum": 1},
        "base_token": {"pattern": TOKEN},
        "ft_token": {"pattern": TOKEN},
    }
)

# runs.params' ranges under the old names (open ends as exclusive bounds).
_OLD_HYPERPARAMETERS = {
    "num_epochs": "epochs",
    "learning_rate": "learning_rate",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_seq_len": "max_length",
}
for _old, _new in _OLD_HYPERPARAMETERS.items():
    _kind, _low, _high, _low_open, _high_open = _NUMBERS[_new]
    FIELD_PATCHES["LegacyFinetuneRequest"][_old] = {
        "minimum": _low,
        "maximum": _high,
        **({"exclusiveMinimum": True} if _low_open else {}),
        **({"exclusiveMaximum": True} if _high_open else {}),
    }
