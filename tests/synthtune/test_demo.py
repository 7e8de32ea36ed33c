"""`make demo`'s path: the demo's own code, end to end, as a separate process, on SmolLM2.

It differs from `make demo` only where a test must: the session's SmolLM2 vLLM is the
teacher and the serving target (TEACHER_URL, VLLM_URL: the documented real-setup
variables), every port is a free one, the data root is a temporary folder, and it asks
half the questions for one epoch less (DEMO_QUESTIONS, DEMO_EPOCHS), about 3 minutes.
It checks what the demo promises: the fine-tuned model answers more held-out questions
in the taught style than the base model does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from synthtune.readiness import free_port
from synthtune.stack import METRICS_PORTS, REPO, implemented_services

# The demo's own bound is its subprocess's 900 s; pytest's default 600 s would cut it first (it took
# 262-444 s in fresh-clone `make test` runs, beside the rest of the suite).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(960)]

RUN_DEMO = """
import sys
from pathlib import Path
from synthtune.demo import main
from synthtune.stack import StackConfig
config = StackConfig(data_root=Path(sys.argv[1]), http_port=int(sys.argv[2]), quiet=True,
                     metrics_ports=dict(zip(sys.argv[3].split(","), map(int, sys.argv[4].split(",")))))
sys.exit(main(config))
"""


def test_the_demo_teaches_the_style_and_stops_everything(tmp_path, smollm2, smollm2_vllm):
    vllm_server = smollm2_vllm
    data_root = tmp_path / "demo"
    http_port = free_port()
    env = {
        **os.environ,
        "SYNTHTUNE_MODELS_ROOT": str(smollm2.parent),
        "BASE_MODEL": smollm2.name,
        "TEACHER_URL": vllm_server.base_url,
        "TEACHER_MODEL": vllm_server.model,
        "VLLM_URL": vllm_server.url,
        "SYNTHTUNE_VLLM_MAX_LORA_RANK": "8",
        "DEMO_QUESTIONS": "64",
        "DEMO_EPOCHS": "3",
        "COLUMNS": "120",
    }
    for _, _, listen_var, _, _ in implemented_services():
        env[listen_var] = f"127.0.0.1:{free_port()}"
    names = list(METRICS_PORTS)
    ports = [str(free_port()) for _ in names]
    try:
        demo = subprocess.run(
            [sys.executable, "-c", RUN_DEMO, str(data_root), str(http_port), ",".join(names), ",".join(ports)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
        )
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        out = demo.stdout
        for step in ("1. Generate", "2. Distil", "3. Fine-tune", "4. Serve and compare", "hot-loaded into vLLM as",
                     "Held-out questions: base vs fine-tuned", "chrF against the teacher", "Done in"):
            assert step in out, f"{step!r} missing from the demo's output:\n{out[-3000:]}"
        share = re.search(r"answers in the style .*?: base (\d+)% → fine-tuned (\d+)%", out)
        assert share, out[-3000:]
        base, fine_tuned = int(share[1]), int(share[2])
        assert fine_tuned >= 50 and fine_tuned >= base + 40, out[-3000:]
        assert "login" in out and (data_root / "control_plane.sqlite3").is_file()
        assert list((data_root / "adapters").glob("demo-v*/manifest.json"))
        # Everything stopped: the control plane's port is closed again.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=2)
    finally:
        _unload_demo_adapters(vllm_server, data_root)


def _unload_demo_adapters(vllm_server, data_root) -> None:
    """The demo leaves its adapter loaded (as `make up` would show it); the session vLLM is shared."""
    for card in httpx.get(f"{vllm_server.url}/v1/models", timeout=10).json()["data"]:
        if card.get("parent") and str(data_root) in card.get("root", ""):
            httpx.post(f"{vllm_server.url}/v1/unload_lora_adapter", json={"lora_name": card["id"]}, timeout=10)


def test_the_demo_prints_the_judges_win_rate_when_a_judge_is_configured(monkeypatch):
    from synthtune import demo

    monkeypatch.delenv("JUDGE_URL", raising=False)
    assert demo._judge() == {} and demo.judge_line({"base": {}, "adapter": {}}) == ""
    monkeypatch.setenv("JUDGE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("JUDGE_MODEL", "judge")
    assert demo._judge() == {"judge": {"base_url": "http://127.0.0.1:8000/v1", "model": "judge", "token": ""}}
    summary = {"judge": {"model": "judge", "wins": 9, "ties": 2, "losses": 1, "no_verdict": 1, "win_rate": 0.75,
                         "win_rate_low": 0.468, "win_rate_high": 0.911, "error": ""}}
    line = demo.judge_line(summary)
    assert "win rate [bold]75%[/] [95% CI 47%-91%] over 12 judged rows" in line and "no verdict 1" in line
    assert "no verdict (judge down)" in demo.judge_line({"judge": {"model": "judge", "error": "judge down"}})
