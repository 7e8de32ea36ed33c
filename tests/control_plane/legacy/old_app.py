"""The old Flask app's answers, key by key and type by type, as its own source has them.

Source: github.com/ai-solution-eng/ai-solution-demos, folder synth-data-gen-fine-tune/, at its
last change, commit e7fc142e04d2866c0fc985335c4ea1cebf290e8e: app/app.py (the routes),
app/fine_tune.py (/finetune_status), app/synthetic_data.py (/generate_data's `meta`) and
app/templates/index.html (the page: what its JavaScript reads). Line numbers are at that commit.

synthtune answers each of these keys with the old type, and adds only the keys in the EXTRA_*
tables, which the README's "Old app routes" section lists.
"""

from __future__ import annotations

from typing import Any

NONE = type(None)
Shape = dict[str, Any]  # key -> a type or a tuple of types

# Every failure, whatever the route: app.py:165-169, 183 (/generate_data), 190 (/list_datasets),
# 199, 206 (/finetune), 225 (/finetune_status), 239 (/list_exported_adapters), 250, 277, 279
# (/hotload_adapter), 289, 301, 303 (/unload_adapter), 311, 330, 357, 359 (/compare). The page
# shows `message` (index.html:67, 77, 126, 257).
ERROR: Shape = {"status": str, "message": str}

# app.py:181; `meta` is generate_synthetic_data's return, synthetic_data.py:101, all strings
# (num_rows is str(len(rows))). The page prints meta.file_name, file_path, num_rows (index.html:58-63).
GENERATE_DATA: Shape = {"status": str, "meta": dict}
GENERATE_DATA_META: Shape = {"file_name": str, "file_path": str, "num_rows": str}
EXTRA_GENERATE_DATA_META: Shape = {
    "dataset": str,
    "rows_requested": int,
    "rows_written": int,
    "dropped": int,
    "failed": int,
    "size_bytes": int,
    "sha256": str,
    "job_id": str,
    "model": str,
}

# app.py:188, each file from _list_datasets (app.py:101-105): size_bytes from os.path.getsize,
# num_rows a line count, both numbers (index.html:87-89 divides size_bytes by 1024).
LIST_DATASETS: Shape = {"status": str, "files": list}
DATASET_FILE: Shape = {"name": str, "size_bytes": int, "num_rows": int}

# app.py:219; job_id is start_finetune's f"job-{_ts()}" (fine_tune.py:269), kept by the page (index.html:122).
FINETUNE: Shape = {"status": str, "job_id": str}

# app.py:226 returns get_finetune_status (fine_tune.py:281-292) as is: the FineTuneJob fields
# (fine_tune.py:47-55): error and adapter_dir Optional[str], output_dir str ("" until it trains).
# An unknown job is 200 {"status": "not_found"} (fine_tune.py:284; index.html:136).
FINETUNE_STATUS: Shape = {
    "status": str,
    "progress": str,
    "error": (str, NONE),
    "adapter_dir": (str, NONE),
    "output_dir": str,
    "base_model_id": str,
}
EXTRA_FINETUNE_STATUS: Shape = {"percent": int}
FINETUNE_STATUSES = {"queued", "running", "done", "error"}  # fine_tune.py:52, 92, 255, 258
FINETUNE_NOT_FOUND: Shape = {"status": str}

# app.py:237, each {"name", "path"} (app.py:236); the page shows both (index.html:160-163).
LIST_EXPORTED_ADAPTERS: Shape = {"status": str, "adapters": list}
EXPORTED_ADAPTER: Shape = {"name": str, "path": str}

# app.py:274 and 298; `response` is _safe_parse_json of vLLM's answer (app.py:108-126): its JSON,
# or {"ok": True, "body": text}. The page prints the whole answer (index.html:189, 212).
HOTLOAD_ADAPTER: Shape = {"status": str, "response": dict, "adapter_name": str, "lora_path": str}
UNLOAD_ADAPTER: Shape = {"status": str, "response": dict, "adapter_name": str}

# app.py:354; the page shows base and finetuned (index.html:251-254).
COMPARE: Shape = {"status": str, "base": str, "finetuned": str}
EXTRA_COMPARE: Shape = {"prompt_format": str}  # the one deliberate difference

# app.py:87
EVENT_LOG: Shape = {"status": str}


def _is(value: Any, types: Any) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not a number
    return isinstance(value, types)


def assert_shape(body: Any, shape: Shape, *, extra: Shape | None = None, status: str | None = None) -> None:
    """`body` has exactly the keys of `shape` (plus `extra`, synthtune's documented additions),
    each of its type; and `status` if given."""
    expected = {**shape, **(extra or {})}
    assert isinstance(body, dict), body
    assert set(body) == set(expected), f"keys {sorted(body)} != {sorted(expected)}"
    wrong = {key: type(body[key]).__name__ for key, types in expected.items() if not _is(body[key], types)}
    assert not wrong, f"wrong types {wrong} in {body}"
    if status is not None:
        assert body["status"] == status, body


def assert_error(response: Any, status_code: int, *fragments: str) -> str:
    """The old failure envelope, with `status_code` and each fragment in the message.
    `response`: a Django test response or an httpx one."""
    code = getattr(response, "status_code", None)
    body = response.json()
    assert code == status_code, body
    assert_shape(body, ERROR, status="error")
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    return body["message"]
