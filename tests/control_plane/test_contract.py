"""The OpenAPI contract: schemathesis against the running stack (gunicorn, worker, the three
services), every operation of /api/schema/, all its checks, 0 failures.

- vLLM is a loopback fake (tests.support.fake_openai: /v1/models and chat completions), not the
  real one: schemathesis calls the serving operations hundreds of times, and what it checks is
  the control plane's contract, not vLLM's answers (tests/serving_proxy_svc and the openai_api
  tests do those against the real vLLM).
- Operations that would call a URL from the request (a teacher, a judge, a vLLM target) get a
  copy of the schema where that field is an enum of the fakes' URLs, so every valid case names a
  fake; and the stack's outbound policy allows loopback only, so an invalid one that happens to
  be a URL is refused before anything calls it.
- The old routes (control_plane.legacy) are in the schema and tested like the rest.
- Where what a schema-valid request may be depends on what the server holds, the copy pins the
  field to what exists (created first): the /v1/ job's training_file and validation_file (an
  unknown file is 400 in OpenAI's API, which /v1/ follows) name two uploaded files, the old
  /finetune's selected_files one's file name. Where OpenAPI 3.0 cannot state a rule, the copy
  pins too: a JSONL `content` is one of a few valid texts, a chat row's messages one of a few
  valid lists (no rule for an array's last item), a versions or curate path names its dataset
  without @N (with `version` in the body that is a 400 that 3.0 cannot relate to the path);
  and contract_hooks.filter_body leaves out bodies that break a rule between fields (a rubric's
  names, from_instructions' num_rows, a run's datasets and eval sets). A file part is drawn as
  valid JSONL by the strategy contract_hooks registers for its media type (SCHEMATHESIS_HOOKS);
  the coverage phase ignores it, so it skips those three operations (FILE_PARTS).
- /generate_data answers once the dataset is written, so the copy asks for at most
  LEGACY_GENERATE_MAX rows (thousands would outlast the request timeout, not break the contract).
- BY_STATE (schemathesis.toml): operations whose answer to a well-formed request depends on the
  state of jobs, runs, datasets (a failed one has no file), vLLM or the trainer's models (none
  here) also pass the positive-data check with a 400 (FAILED_PRECONDITION, the trainer's
  checks, the old routes' 400 for an unknown adapter); every other check, the negative-data one
  included, holds them.
- HEADER_PARAMETERS: another header than the documented ones is not negative data (RFC 9110).
- Derandomized: a fixed seed (SYNTHTUNE_CONTRACT_SEED), so a failure reproduces.
- Bounded: SYNTHTUNE_CONTRACT_MAX_EXAMPLES per operation and phase and SYNTHTUNE_CONTRACT_MAX_TIME
  seconds in all (about 3 minutes in `make test`; `make fuzz` raises both for >= 10,000 cases).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
import yaml

from control_plane.core.schema import HTTP_URL, JSONL_MEDIA_TYPE, VLLM_URL
from control_plane.datasets import generation
from tests.control_plane import contract_hooks
from tests.support.fake_openai import FakeOpenAI
from tests.support.procs import REPO
from tests.support.stack import running_stack

SEED = int(os.environ.get("SYNTHTUNE_CONTRACT_SEED", "20261202"))
MAX_EXAMPLES = int(os.environ.get("SYNTHTUNE_CONTRACT_MAX_EXAMPLES", "25"))
MAX_TIME_S = int(os.environ.get("SYNTHTUNE_CONTRACT_MAX_TIME", "150"))
MIN_CASES = int(os.environ.get("SYNTHTUNE_CONTRACT_MIN_CASES", "1000"))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(MAX_TIME_S + 300)]


# Failures not fixed yet, each (check code, operation) with why; any other failure fails the test.
# None listed: an entry would need its reason here and in the README's "The contract".
KNOWN_GAPS: dict[tuple[str, str], str] = {}

LEGACY_GENERATE_MAX = contract_hooks.LEGACY_GENERATE_MAX
# Operations whose answer to a well-formed request depends on what the server holds, beyond
# what a schema can say: a 400 (FAILED_PRECONDITION, or the old routes' 400 for an unknown name)
# also passes their positive-data check (schemathesis.toml). Every other check holds them.
BY_STATE = {
    # a job or run in a state that does not allow it (finished, running...)
    "cancel, resume": r"POST /.+/(cancel|resume)/?",
    # a dataset with later versions (or a run's) is not deleted; a failed one has no file to read
    "delete": r"DELETE /(api/v1/datasets|v1/files)/.+",
    "read": r"GET /(api/v1/datasets/.+/(diff|download)/|v1/files/.+/content)",
    # what vLLM serves (the fake serves its own base model), an adapter's eval split
    "serving": r"POST /api/v1/(adapters/.+/(load|unload)|compare(/batch)?)/",
    # a dataset still generating has no versions made from it yet
    "versions": r"POST /api/v1/(datasets/.+/(versions|curate)/|dataset-merges/)",
    # the trainer checks the base model against what it holds (no models here: a run that
    # trained would load the 2 cores this test shares), the hyperparameters against the model
    # and this machine (device, hidden size, context length) and one another
    "training": r"POST /(api/v1/runs/|v1/fine_tuning/jobs|finetune)",
    # no run exports an adapter the old routes could name (LegacyApi: an unknown one is a 400)
    "old serving": r"POST /(hotload_adapter|unload_adapter|compare)",
}
# Bodies with a file part, whose bytes the coverage phase draws from its own samples (PNG...),
# not from the media type's strategy: fuzzing and stateful phases only.
FILE_PARTS = r"POST /(api/v1/datasets/|api/v1/datasets/\{name\}/versions/|v1/files)"
# Operations with a header parameter: a request with another header is no schema violation (a
# recipient ignores header fields it does not know, RFC 9110 5.1), though schemathesis's coverage
# phase sends one as negative data.
HEADER_PARAMETERS = r"GET /.+/events/stream/"
CONFIG = """
[[operations]]
include-name-regex = "^({by_state})$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-name-regex = "^{file_parts}$"
phases.coverage.enabled = false

[[operations]]
include-name-regex = "^{header_parameters}$"
generation.allow-extra-parameters = false
"""

# The dataset created before the run, and the values the pins offer.
SEED_DATASET = "contract-seed"
EVAL_DATASET = "contract-eval"  # a validation file apart from the training one
SEED_ROWS = [{"instruction": f"Question {i}?", "output": f"Answer {i}."} for i in range(3)]
JSONL_TEXTS = [
    '{"instruction": "Hi?", "output": "Hello."}\n',
    '{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}',
    '\n{"instruction": "Né?", "input": "", "output": "Oui."}\r\n\n{"instruction": "2?", "output": "Two."}',
]
CHAT_MESSAGES = [
    [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
    [
        {"role": "system", "content": ""},
        {"role": "user", "content": "Ça va?"},
        {"role": "assistant", "content": "Oui."},
    ],
]


def _schema(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/api/schema/", headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return yaml.safe_load(response.read())


def _request(url: str, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _pin_state(schema: dict[str, Any], *, dataset: str) -> None:
    """In place: the fields that must name something that exists name `dataset` or EVAL_DATASET
    (module docstring)."""
    schemas = schema["components"]["schemas"]
    job = schemas["FineTuningJobCreateInputRequest"]["properties"]
    job["training_file"] = {"type": "string", "enum": [f"file-{dataset}"]}
    job["validation_file"] = {"type": "string", "enum": [f"file-{EVAL_DATASET}"]}

    finetune = schemas["LegacyFinetuneRequest"]["properties"]
    finetune["selected_files"]["items"] = {"type": "string", "enum": [f"{dataset}.jsonl", dataset]}

    schemas["LegacyGenerateDataRequest"]["properties"]["num_samples"]["maximum"] = LEGACY_GENERATE_MAX
    for path in ("/api/v1/datasets/{name}/versions/", "/api/v1/datasets/{name}/curate/"):
        for parameter in schema["paths"][path]["post"]["parameters"]:
            if parameter["name"] == "name":
                parameter["schema"]["pattern"] = parameter["schema"]["pattern"].replace("(@0*[1-9][0-9]*)?", "")


def _pin_rows(schema: dict[str, Any]) -> None:
    """In place: a JSON body's `content` one of JSONL_TEXTS, a chat row's messages one of
    CHAT_MESSAGES (module docstring)."""
    for component in schema["components"]["schemas"].values():
        properties = component.get("properties", {})
        if "content" in properties and "rows" in properties:
            properties["content"] = {"type": "string", "enum": JSONL_TEXTS}
            for row in properties["rows"]["items"].get("oneOf", []):  # the Json bodies' rows
                if "messages" in row["required"]:
                    row["properties"]["messages"] = {"type": "array", "enum": CHAT_MESSAGES}


def _inline_enums(schema: dict[str, Any]) -> None:
    """In place: in a multipart body with a part's encoding, a property that is a $ref to an enum
    is that enum. schemathesis 4.32 draws such a body from its properties alone, where the $ref
    does not resolve (it sent purpose="" for the PurposeEnum of POST /v1/files)."""
    schemas = schema["components"]["schemas"]
    for operations in schema["paths"].values():
        for operation in operations.values():
            multipart = (operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
                         if isinstance(operation, dict) else None)
            if not multipart or "encoding" not in multipart or "$ref" not in multipart["schema"]:
                continue
            component = schemas[multipart["schema"]["$ref"].rsplit("/", 1)[-1]]
            for name, prop in component["properties"].items():
                refs = [part["$ref"] for part in prop.get("allOf", []) if "$ref" in part]
                if len(refs) == 1 and len(prop["allOf"]) == 1:
                    enum = schemas[refs[0].rsplit("/", 1)[-1]]
                    component["properties"][name] = {**{k: v for k, v in prop.items() if k != "allOf"}, **enum}


def _pin_urls(schema: dict[str, Any], *, endpoint: str, vllm: str) -> None:
    """In place: every URL a request may name (a string whose pattern is core.schema's VLLM_URL or
    HTTP_URL, in a *Request component or a parameter) an enum of a fake's URL: vLLM's for a
    target, the OpenAI fake's for a teacher or judge (blank too where a blank is allowed)."""
    urls = {VLLM_URL: vllm, HTTP_URL: endpoint}
    for name, component in schema["components"]["schemas"].items():
        if name.endswith(("Request", "RequestJson", "RequestForm")):
            _pin_in(component, urls)
    for operations in schema["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else ():
                _pin_in(parameter["schema"], urls)


def _pin_in(node: Any, urls: dict[str, str]) -> None:
    if isinstance(node, list):
        for item in node:
            _pin_in(item, urls)
    if not isinstance(node, dict):
        return
    pattern = node.get("pattern", "")
    url = next((url for rule, url in urls.items() if pattern.endswith(rule)), None)
    if url is not None and node.get("type") == "string":
        blank = pattern != next(rule for rule in urls if pattern.endswith(rule))  # "^\s+$|" + rule
        node.pop("pattern")
        node.pop("maxLength", None)
        node.pop("minLength", None)
        node["enum"] = [url, " "] if blank else [url]
        return
    for value in node.values():
        _pin_in(value, urls)


def test_every_operation_keeps_the_contract(tmp_path):
    with FakeOpenAI() as fake:
        vllm_url = fake.base_url.removesuffix("/v1")
        with running_stack(
            tmp_path / "data",
            SYNTHTUNE_VLLM_URL=vllm_url,
            SYNTHTUNE_VLLM_REPLICAS=vllm_url,
            SYNTHTUNE_THROTTLE_USER="",  # thousands of calls from one user; 429 is not what is tested
            SYNTHTUNE_THROTTLE_ANON="",
            SYNTHTUNE_OUTBOUND_ALLOW="127.0.0.0/8",  # nothing but loopback may be called
        ) as stack:
            for name in (SEED_DATASET, EVAL_DATASET):
                _request(stack.url, stack.token, "/api/v1/datasets/", {"name": name, "rows": SEED_ROWS})
            schema = _schema(stack.url, stack.token)
            _pin_urls(schema, endpoint=fake.base_url, vllm=vllm_url)
            _pin_state(schema, dataset=SEED_DATASET)
            _pin_rows(schema)
            _inline_enums(schema)
            schema_path = tmp_path / "schema.yaml"
            schema_path.write_text(yaml.safe_dump(schema))
            report = tmp_path / "report.json"
            command = [
                sys.executable, "-m", "schemathesis.cli", "run", str(schema_path),
                "--url", stack.url,
                "--header", f"Authorization: Token {stack.token}",
                "--checks", "all",
                "--mode", "all",
                "--seed", str(SEED),
                "--max-examples", str(MAX_EXAMPLES),
                "--max-time", str(MAX_TIME_S),
                "--workers", "1",
                "--request-timeout", "30",
                "--no-color",
                "--report", "json", "--report-json-path", str(report),
            ]
            config = CONFIG.format(
                by_state="|".join(BY_STATE.values()), file_parts=FILE_PARTS, header_parameters=HEADER_PARAMETERS
            )
            (tmp_path / "schemathesis.toml").write_text(config.replace("\\", "\\\\"))  # TOML escapes
            # In tmp_path: the CLI keeps a .schemathesis/ cache in its working folder, and finds
            # schemathesis.toml there.
            env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.control_plane.contract_hooks", "PYTHONPATH": str(REPO)}
            run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert contract_hooks.JSONL_MEDIA_TYPE == JSONL_MEDIA_TYPE
    assert contract_hooks.LEGACY_GENERATE_CAP == generation.MAX_ROWS
    output = tmp_path / "schemathesis.txt"  # the whole output: every failure with its curl
    output.write_text(run.stdout + run.stderr)
    assert report.exists(), run.stdout[-4000:] + run.stderr[-4000:]
    result = json.loads(report.read_text())
    found = "\n".join(
        f"{f['code']} {f['title']}: {', '.join(f['operations'])}" for f in result["failures"]
    )
    cases = result["test_cases"]["generated"]
    print(f"schemathesis: {cases} cases over {result['operations']['tested']} operations, "
          f"{result['test_cases']['with_failures']} with failures, {len(result['errors'])} errors")
    assert result["operations"]["tested"] == result["operations"]["total"], result["operations"]
    unexpected = [
        f"{f['code']} {f['title']}: {operation}"
        for f in result["failures"]
        for operation in f["operations"]
        if (f["code"], operation) not in KNOWN_GAPS
    ]
    assert not unexpected and not result["errors"], (
        "\n".join(unexpected) + f"\n(all of it in {output})\n{run.stdout[-8000:]}"
    )
    if result["failures"]:
        print(f"known gaps only:\n{found}")
    assert cases >= MIN_CASES, f"only {cases} cases (wanted >= {MIN_CASES})"
