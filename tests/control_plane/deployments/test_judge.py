"""The batch compare's LLM judge through the control plane: REST (JSON and SSE), 400s naming the
judge's fields, 503 for a judge that is down, the judge's token never stored, the admin's
compare page and the CLI table showing both verdicts and the summary.

Fast: the real serving proxy runs in this process in front of a fake vLLM (base and adapter
answer differently), and a fake judge answers by the row's instruction.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from click.testing import CliRunner
from rest_framework.authtoken.models import Token

from control_plane.deployments.models import Comparison
from synthtune.cli.main import cli
from tests.control_plane.deployments.helpers import BATCH
from tests.control_plane.helpers import assert_error_body
from tests.control_plane.runs.factories import AdapterFactory
from tests.serving_proxy_svc.conftest import InProcessProxy, write_adapter
from tests.support.fake_openai import FakeOpenAI
from tests.support.procs import free_port

GOOD, BAD = "Paris.", "Bananas."
JUDGE_TOKEN = "judge-token-cp-4242"
COMPARE_PAGE = "/admin/deployments/deployment/compare/"
_TAG = re.compile(r"<(instruction|answer_a|answer_b)>\n(.*?)\n</\1>", re.S)


def judge_reply(body: dict) -> str:
    parts = dict(_TAG.findall(body["messages"][0]["content"]))
    adapter_is = "A" if parts["answer_a"] == GOOD else "B"
    if parts["instruction"] == "biased":
        return json.dumps({"winner": "A", "reason": "the first one"})
    if parts["instruction"] == "garbage":
        return "no idea, really"
    return json.dumps({"winner": adapter_is, "reason": "it names the capital"})


@pytest.fixture
def served(cp_settings, serving_root, db):
    """An adapter on a fake vLLM behind the real proxy (in this process), and a fake judge."""
    name = f"judged-{uuid.uuid4().hex[:6]}-v1"
    adapters = serving_root / "adapters"
    rows = [{"instruction": i, "output": GOOD} for i in ("capital", "biased", "garbage")]
    write_adapter(adapters, name, base="fake-model", eval_rows=rows)
    adapter = AdapterFactory(name=name, run=None, base_model="fake-model", prompt_format="chat")
    cards = [
        {"id": "fake-model", "root": "/models/fake-model"},
        {"id": name, "root": f"{adapters.resolve()}/{name}", "parent": "fake-model"},
    ]
    answers = lambda body: GOOD if body["model"] == name else BAD  # noqa: E731
    with (
        FakeOpenAI(models=cards, respond=answers) as vllm,
        FakeOpenAI(models=[{"id": "judge"}], respond=judge_reply) as judge,
        InProcessProxy(serving_root, vllm_url=vllm.base_url) as proxy,
    ):
        cp_settings.SYNTHTUNE_SERVING_PROXY_ADDR = proxy.address
        yield adapter, judge


def _body(adapter, judge, **judge_fields):
    return {
        "adapter": adapter.name,
        "limit": 3,
        "judge": {"base_url": judge.base_url, "model": "judge", "token": JUDGE_TOKEN, **judge_fields},
    }


def _sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


def test_a_judged_batch_as_json_and_as_a_stream(api, served):
    adapter, judge = served
    reply = api.post(BATCH, _body(adapter, judge), format="json")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    judged = [row["judge"] for row in body["rows"]]
    assert [j["outcome"] for j in judged] == ["win", "tie", "no_verdict"]
    assert judged[1]["inconsistent"] and "held no verdict" in judged[2]["reason"]
    assert [(v["first"], v["winner"], v["reason"]) for v in judged[0]["verdicts"]] == [
        ("base", "adapter", "it names the capital"),
        ("adapter", "adapter", "it names the capital"),
    ]
    summary = body["summary"]["judge"]
    assert {k: summary[k] for k in ("wins", "ties", "losses", "no_verdict", "inconsistent")} == {
        "wins": 1,
        "ties": 1,
        "losses": 0,
        "no_verdict": 1,
        "inconsistent": 1,
    }
    assert summary["win_rate"] == 0.5 and 0 < summary["win_rate_low"] < 0.5 < summary["win_rate_high"] <= 1
    assert {r.headers.get("Authorization") for r in judge.chat_requests()} == {f"Bearer {JUDGE_TOKEN}"}
    # Recorded without the token; everything else about the judge is kept.
    comparison = Comparison.objects.get(pk=body["comparison_id"])
    assert comparison.request["judge"] == {"base_url": judge.base_url, "model": "judge", "mode": "pairwise"}
    stored = json.dumps([comparison.request, comparison.result, comparison.summary])
    assert JUDGE_TOKEN not in stored and comparison.summary["judge"]["wins"] == 1

    streamed = api.post(
        BATCH, _body(adapter, judge, mode="pairwise"), format="json", HTTP_ACCEPT="text/event-stream"
    )
    events = _sse(b"".join(streamed.streaming_content).decode())
    assert [kind for kind, _ in events] == ["row", "row", "row", "summary", "comparison"]
    assert events[0][1]["judge"]["outcome"] == "win" and events[3][1]["judge"]["no_verdict"] == 1


def test_without_a_judge_nothing_changes(api, served):
    adapter, judge = served
    body = api.post(BATCH, {"adapter": adapter.name, "limit": 1}, format="json").json()
    assert body["rows"][0]["judge"] is None and body["summary"]["judge"] is None
    assert judge.chat_requests() == [] and "judge" not in Comparison.objects.get().request


@pytest.mark.parametrize(
    ("judge_fields", "field"),
    [
        ({"base_url": "not a url"}, "judge.base_url"),
        ({"base_url": "ftp://judge.example/v1"}, "judge.base_url"),
        ({"base_url": "http://169.254.169.254/v1"}, "judge.base_url"),  # the outbound policy's metadata rule
        ({"mode": "best-of-3"}, "judge.mode"),
        ({"model": ""}, "judge.model"),
        ({"concurrency": 0}, "judge.concurrency"),
    ],
)
def test_bad_judge_input_is_400_naming_the_field(api, served, judge_fields, field):
    adapter, judge = served
    reply = api.post(BATCH, _body(adapter, judge, **judge_fields), format="json")
    assert assert_error_body(reply, 400, "INVALID_ARGUMENT")["extra"]["field"] == field
    assert judge.chat_requests() == [] and not Comparison.objects.exists()


def test_a_judge_that_is_down_or_misnamed_is_refused_at_the_start(api, served):
    adapter, judge = served
    down = f"http://127.0.0.1:{free_port()}/v1"
    body = assert_error_body(
        api.post(BATCH, _body(adapter, judge, base_url=down), format="json"), 503, "UNAVAILABLE"
    )
    assert "judge" in body["message"] and down in body["message"] and JUDGE_TOKEN not in json.dumps(body)
    body = assert_error_body(
        api.post(BATCH, _body(adapter, judge, model="nope"), format="json"), 400, "INVALID_ARGUMENT"
    )
    assert body["extra"]["field"] == "judge.model" and "does not serve 'nope'" in body["message"]
    assert not Comparison.objects.exists()


def test_the_admin_compare_page_shows_both_verdicts_and_the_summary(client, staff, served):
    adapter, judge = served
    client.force_login(staff)
    form = {
        "batch-adapter": adapter.name,
        "batch-limit": "3",
        "batch-judge_url": judge.base_url,
        "batch-judge_model": "judge",
        "batch-judge_token": JUDGE_TOKEN,
        "batch-judge_mode": "pairwise",
        "_batch": "1",
    }
    page = client.post(COMPARE_PAGE, form).content.decode()
    rows = re.search(r'<table id="batch-rows".*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    assert rows.count('data-outcome="win"') == 1 and "(the orders disagreed)" in rows
    assert "base first: <strong>adapter</strong> &mdash; it names the capital" in rows
    assert "adapter first: <strong>adapter</strong>" in rows and "held no verdict" in rows
    summary = re.search(r'<tr id="judge-summary-row">(.*?)</tr>', page, re.S).group(1)
    assert "<td>1 (50%)</td>" in summary and "<td>1</td>" in summary
    assert JUDGE_TOKEN not in page  # never echoed into the form
    # A bad judge URL comes back on its own field (the proxy's check, as for the API).
    page = client.post(COMPARE_PAGE, {**form, "batch-judge_url": "nope"}).content.decode()
    field_row = re.search(r'<div class="form-row errors">(.*?)</div>', page, re.S).group(1)
    assert "is not an http(s) URL" in field_row and 'name="batch-judge_url"' in field_row
    assert Comparison.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_cli_table_shows_the_verdicts_and_the_judge_summary(live_server, user, served, monkeypatch):
    adapter, judge = served
    monkeypatch.setenv("SYNTHTUNE_API_URL", live_server.url)
    monkeypatch.setenv("SYNTHTUNE_API_TOKEN", Token.objects.create(user=user).key)
    monkeypatch.setenv("SYNTHTUNE_CONFIG", "/nonexistent/config.json")
    monkeypatch.setenv("MY_JUDGE_TOKEN", JUDGE_TOKEN)
    monkeypatch.setenv("COLUMNS", "200")
    args = [
        "compare",
        "batch",
        adapter.name,
        "--limit",
        "3",
        "--judge-url",
        judge.base_url,
        "--judge-model",
        "judge",
        "--judge-token-env",
        "MY_JUDGE_TOKEN",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "base first → adapter: it names the capital" in result.output
    assert (
        "tie (orders disagree)" in result.output
        and "adapter first → no verdict: the judge's reply" in result.output
    )
    assert "fine-tuned win rate 50% [95% CI" in result.output and "position-inconsistent" in result.output
    assert JUDGE_TOKEN not in result.output
    assert {r.headers.get("Authorization") for r in judge.chat_requests()} == {f"Bearer {JUDGE_TOKEN}"}
    as_json = CliRunner().invoke(cli, ["--json", *args], catch_exceptions=False)
    assert json.loads(as_json.stdout)["summary"]["judge"]["wins"] == 1
    unset = CliRunner().invoke(cli, [*args[:-1], "NO_SUCH_VAR"])
    assert unset.exit_code == 2 and "NO_SUCH_VAR" in unset.output
