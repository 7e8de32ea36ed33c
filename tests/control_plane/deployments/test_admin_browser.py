"""Serving in a real browser: load an adapter from the admin's adapter list, then compare it
with its base model on the Compare page and see both outputs; and a batch that streams its
rows into the table (compare.js over the SSE answer of the batch API).

Everything is real and separate: headless Chromium (Debian's), gunicorn serving the control
plane, the worker, the trainer (which fine-tunes and exports the adapter first) and the serving
proxy (synthtune.stack, as `make up` runs them), and vLLM serving the tiny Phi-3.
"""

from __future__ import annotations

import pytest

from synthtune.client import ApiError, Client
from tests.control_plane.deployments.helpers import BASE_MODEL, pattern_rows
from tests.control_plane.test_admin_browser import browser  # noqa: F401  (the fixture)
from tests.support.stack import running_stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def stack(data_root, tiny_models, vllm_server):
    env = {
        "SYNTHTUNE_MODELS_ROOT": str(tiny_models),
        "SYNTHTUNE_VLLM_URL": vllm_server.url,
        "SYNTHTUNE_VLLM_MAX_LORA_RANK": "8",
    }
    with running_stack(data_root, **env) as running:
        yield running


def _train(api: Client) -> str:
    """Fine-tune through the stack (one epoch) and return the exported adapter's name."""
    api.request("POST", "/api/v1/datasets/", json={"name": "browser-rows", "rows": pattern_rows(24)})
    run = api.start_run(
        datasets=["browser-rows"],
        base_model=BASE_MODEL,
        hyperparameters={"epochs": 1, "learning_rate": 5e-3, "max_length": 128, "eval_fraction": 0.25},
        adapter_name="browser",
    )
    for _ in api.follow_run(run["run_id"]):
        pass
    finished = api.run(run["run_id"])
    assert finished["state"] == "succeeded" and finished["adapter"], finished
    return finished["adapter"]


def test_load_from_the_admin_then_compare_side_by_side(browser, stack):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with Client(stack.url, token=stack.token, timeout_s=120) as api:
        name = _train(api)
        try:
            wait = WebDriverWait(browser, 60)
            logs = lambda: "\nproxy log:\n" + stack.log_text("serving-proxy")[-3000:]
            browser.get(f"{stack.url}/admin/runs/adapter/")
            browser.find_element(By.ID, "id_username").send_keys(stack.username)
            browser.find_element(By.ID, "id_password").send_keys(stack.password)
            browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

            # The Load action on the selected adapter.
            wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input.action-select[value]"))).click()
            browser.find_element(By.CSS_SELECTOR, "select[name=action] option[value=load_adapters]").click()
            browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
            message = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li")))
            assert f"loaded as {name}" in message.text, message.text + logs()
            [deployment] = api.deployments(adapter=name)
            assert deployment["state"] == "loaded"

            # The Compare link of that adapter opens the page with it chosen.
            browser.find_element(By.CSS_SELECTOR, "a.compare-link").click()
            form = wait.until(ec.presence_of_element_located((By.ID, "compare-form")))
            assert name in browser.find_element(By.ID, "loaded-adapters").text
            form.find_element(By.ID, "id_one-prompt").send_keys("Say something about the tide, number 5.")
            form.find_element(By.ID, "id_one-max_tokens").send_keys("24")
            form.find_element(By.ID, "compare-submit").click()

            result = WebDriverWait(browser, 120).until(
                ec.presence_of_element_located((By.ID, "compare-result")), message="no comparison" + logs()
            )
            base = result.find_element(By.ID, "compare-base")
            tuned = result.find_element(By.ID, "compare-adapter")
            assert base.is_displayed() and tuned.is_displayed()
            assert BASE_MODEL in base.find_element(By.TAG_NAME, "h3").text
            assert name in tuned.find_element(By.TAG_NAME, "h3").text
            base_text = browser.find_element(By.ID, "compare-base-text").text
            tuned_text = browser.find_element(By.ID, "compare-adapter-text").text
            assert tuned_text and tuned_text != base_text
            for side in ("base", "adapter"):
                assert browser.find_element(By.ID, f"compare-{side}-finish").text in ("stop", "length")
            # Side by side: the two columns share a row on the page.
            assert base.location["y"] == tuned.location["y"] and base.location["x"] < tuned.location["x"]

            # The batch form streams its rows into the table, then the summary.
            batch = browser.find_element(By.ID, "batch-form")
            limit = batch.find_element(By.ID, "id_batch-limit")
            limit.clear()
            limit.send_keys("3")
            batch.find_element(By.ID, "id_batch-max_tokens").send_keys("8")
            batch.find_element(By.ID, "batch-submit").click()
            WebDriverWait(browser, 120).until(
                lambda d: d.find_element(By.ID, "batch-status").text.startswith("done"),
                message="the batch did not finish" + logs(),
            )
            assert len(browser.find_elements(By.CSS_SELECTOR, "#batch-rows tbody tr.live")) == 3
            summary = browser.find_elements(By.CSS_SELECTOR, "#batch-summary tbody tr")
            assert [row.get_attribute("data-side") for row in summary] == ["base", "adapter"]
            assert browser.find_element(By.ID, "batch-error").get_attribute("hidden")
        finally:
            try:
                api.unload_adapter(name)  # leave the session's vLLM as it was
            except ApiError:
                pass
