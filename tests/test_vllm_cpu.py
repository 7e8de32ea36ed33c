"""A real vLLM CPU server serves the tiny models with the same prompt format as training.

Most tests use the session server (tiny-phi3, runtime LoRA on, default
structured-output backend). A second, module-scoped server runs tiny-llama-plain
with runtime LoRA off and the `guidance` structured-output backend.
"""

from __future__ import annotations

import json

import httpx
import pytest

from synthtune.local_vllm import VllmServer, group_pids

INSTRUCTIONS_SCHEMA = {
    "type": "object",
    "properties": {
        "instructions": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 40},
            "minItems": 1,
            "maxItems": 3,
        }
    },
    "required": ["instructions"],
    "additionalProperties": False,
}
# Seeded sampling is deterministic on the CPU build, so these exact requests are reproducible.
SEEDS = range(8)


def json_schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "instructions", "schema": schema, "strict": True}}


def assert_matches_instructions_schema(obj) -> None:
    """A hand check of INSTRUCTIONS_SCHEMA (jsonschema is not a direct dependency)."""
    assert isinstance(obj, dict) and set(obj) == {"instructions"}, obj
    items = obj["instructions"]
    assert isinstance(items, list) and 1 <= len(items) <= 3, obj
    assert all(isinstance(s, str) and 1 <= len(s) <= 40 for s in items), obj


def post(server: VllmServer, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=120)


# --- VllmServer itself, no process needed ------------------------------------------------------


def test_command_follows_the_design_recipe(tmp_path):
    server = VllmServer(tmp_path / "m", served_name="m", log_path=tmp_path / "log", port=12345)
    cmd = server.command()

    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]  # `vllm serve` fails in this build
    args = cmd[3:]
    flags = {
        a: (b if not b.startswith("--") else None)
        for a, b in zip(args, [*args[1:], "--"])
        if a.startswith("--")
    }
    assert "--enable-lora" in flags
    assert {k: flags[k] for k in ("--max-lora-rank", "--max-num-seqs", "--dtype", "--host", "--port")} == {
        "--max-lora-rank": "8",
        "--max-num-seqs": "1",
        "--dtype": "float32",
        "--host": "127.0.0.1",
        "--port": "12345",
    }
    assert server.url == "http://127.0.0.1:12345" and server.base_url == "http://127.0.0.1:12345/v1"


def test_runtime_lora_flag_controls_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True")  # leaking in from a shell must not matter
    on = VllmServer(tmp_path, served_name="m", log_path=tmp_path / "log").environment()
    off = VllmServer(tmp_path, served_name="m", log_path=tmp_path / "log", runtime_lora=False).environment()

    assert on["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in off
    assert on["HF_HUB_OFFLINE"] == off["HF_HUB_OFFLINE"] == "1"
    assert on["VLLM_NO_USAGE_STATS"] == "1"


@pytest.mark.slow
def test_start_fails_fast_with_the_log_when_vllm_exits(tmp_path):
    server = VllmServer(tmp_path / "no-such-model", served_name="m", log_path=tmp_path / "vllm.log")
    with pytest.raises(RuntimeError, match="exited with"):
        server.start()
    assert not server.running


# --- the session server: tiny-phi3 ---------------------------------------------------------------


@pytest.mark.slow
def test_models_endpoint_lists_the_served_model(vllm_server):
    reply = httpx.get(f"{vllm_server.base_url}/models", timeout=30)

    assert reply.status_code == 200
    # The session server is shared: adapters other tests loaded may be listed too (with a parent).
    bases = [m for m in reply.json()["data"] if not m.get("parent")]
    assert [m["id"] for m in bases] == ["tiny-phi3"]
    assert bases[0]["root"] == str(vllm_server.model_dir)


@pytest.mark.slow
def test_chat_completion_uses_the_training_chat_template(vllm_server, tiny_models):
    from transformers import AutoTokenizer

    messages = [{"role": "user", "content": "Name a colour."}]
    reply = post(
        vllm_server,
        "/chat/completions",
        {
            "model": "tiny-phi3",
            "messages": messages,
            "max_tokens": 8,
            "temperature": 0,
            "return_token_ids": True,
        },
    )

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] == 8
    # Same ids as the trainer's apply_chat_template: one <s>, no second one added by vLLM.
    tokenizer = AutoTokenizer.from_pretrained(tiny_models / "tiny-phi3")
    expected = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert body["prompt_token_ids"] == expected


@pytest.mark.slow
def test_completion_returns_text_and_adds_bos(vllm_server, tiny_models):
    from transformers import AutoTokenizer

    reply = post(
        vllm_server,
        "/completions",
        {
            "model": "tiny-phi3",
            "prompt": "Hello there",
            "max_tokens": 8,
            "temperature": 0,
            "return_token_ids": True,
        },
    )

    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    assert choice["text"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_models / "tiny-phi3")
    assert choice["prompt_token_ids"] == tokenizer("Hello there").input_ids


@pytest.mark.slow
def test_json_schema_response_format_is_honoured(vllm_server):
    """Default backend (xgrammar): every answer has the schema's shape, even from random weights.

    xgrammar 0.2.8 lets raw control characters (U+0000-U+001F) into strings, which strict JSON
    forbids, so clients must parse with strict=False. It also allows unbounded whitespace
    between tokens: schemas need bounds and max_tokens room, or the JSON gets cut off.
    """
    messages = [{"role": "user", "content": "Write three short instructions as JSON."}]
    for seed in SEEDS:
        reply = post(
            vllm_server,
            "/chat/completions",
            {
                "model": "tiny-phi3",
                "messages": messages,
                "max_tokens": 450,
                "temperature": 1.0,
                "seed": seed,
                "response_format": json_schema_format(INSTRUCTIONS_SCHEMA),
            },
        )
        assert reply.status_code == 200, reply.text
        choice = reply.json()["choices"][0]
        assert choice["finish_reason"] == "stop", f"seed {seed}: JSON cut off at max_tokens"
        assert_matches_instructions_schema(json.loads(choice["message"]["content"], strict=False))


@pytest.mark.slow
def test_runtime_lora_route_is_enabled(vllm_server, tmp_path):
    reply = post(
        vllm_server, "/load_lora_adapter", {"lora_name": "nope", "lora_path": str(tmp_path / "missing")}
    )

    # Enabled route, missing adapter: vLLM's own 404 error body, not FastAPI's "Not Found".
    assert reply.status_code == 404
    assert "error" in reply.json()


# --- a second server: tiny-llama-plain, runtime LoRA off, guidance backend ----------------------


@pytest.fixture(scope="module")
def plain_server(tiny_models, tmp_path_factory):
    log = tmp_path_factory.mktemp("vllm-plain") / "vllm.log"
    server = VllmServer(
        tiny_models / "tiny-llama-plain",
        served_name="tiny-llama-plain",
        log_path=log,
        runtime_lora=False,
        extra_args=["--structured-outputs-config", json.dumps({"backend": "guidance"})],
    )
    with server:
        yield server


@pytest.mark.slow
def test_plain_model_serves_completions_but_not_chat(plain_server):
    completion = post(
        plain_server,
        "/completions",
        {"model": "tiny-llama-plain", "prompt": "### Instruction:\nHi", "max_tokens": 8},
    )
    chat = post(
        plain_server,
        "/chat/completions",
        {"model": "tiny-llama-plain", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
    )

    assert completion.status_code == 200, completion.text
    assert completion.json()["choices"][0]["text"]
    # No chat template: vLLM refuses chat instead of inventing a format (so the proxy must use /v1/completions).
    assert chat.status_code == 400, chat.text
    assert "chat template" in chat.json()["error"]["message"].lower()


@pytest.mark.slow
def test_runtime_lora_route_is_absent_without_the_env_var(plain_server, tmp_path):
    reply = post(plain_server, "/load_lora_adapter", {"lora_name": "x", "lora_path": str(tmp_path)})

    assert reply.status_code == 404
    assert reply.json() == {"detail": "Not Found"}


@pytest.mark.slow
def test_guidance_backend_gives_strictly_valid_json(plain_server):
    """With --structured-outputs-config backend=guidance the output is strict JSON (no raw control chars)."""
    for seed in SEEDS:
        reply = post(
            plain_server,
            "/completions",
            {
                "model": "tiny-llama-plain",
                "prompt": "### Instruction:\nWrite three instructions as JSON.\n\n### Response:\n",
                "max_tokens": 450,
                "temperature": 1.0,
                "seed": seed,
                "response_format": json_schema_format(INSTRUCTIONS_SCHEMA),
            },
        )
        assert reply.status_code == 200, reply.text
        choice = reply.json()["choices"][0]
        assert choice["finish_reason"] == "stop", f"seed {seed}: JSON cut off at max_tokens"
        assert_matches_instructions_schema(json.loads(choice["text"]))  # strict parse


@pytest.mark.slow
def test_restart_comes_back_on_the_same_port_and_kills_the_old_group(plain_server):
    old_pgid, url = plain_server.proc.pid, plain_server.url

    plain_server.restart()

    assert plain_server.url == url and plain_server.running
    assert not group_pids(old_pgid), "vLLM children outlived stop()"
    reply = post(plain_server, "/completions", {"model": "tiny-llama-plain", "prompt": "Hi", "max_tokens": 4})
    assert reply.status_code == 200, reply.text
