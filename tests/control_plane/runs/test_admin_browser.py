"""The run page in a real browser: Fine-tune from the datasets list, then watch progress and
the loss curve grow live (EventSource on the SSE endpoint) while the run trains, and cancel it.

Everything is real and separate: headless Chromium (Debian's), gunicorn serving the control
plane, the worker, the datagen and trainer services (synthtune.stack, as `make up` runs them),
and the trainer's child process training the tiny Phi-3.
"""

from __future__ import annotations

import re

import pytest

from synthtune.client import Client
from tests.control_plane.runs.helpers import training_rows
from tests.control_plane.test_admin_browser import browser  # noqa: F401  (the fixture)
from tests.support.stack import running_stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def stack(data_root, tiny_models):
    with running_stack(data_root, SYNTHTUNE_MODELS_ROOT=str(tiny_models)) as running:
        yield running


def _points(d: str) -> int:
    return len(re.findall(r"[ML]\s*-?[\d.]+\s+-?[\d.]+", d or ""))


def test_the_run_page_shows_progress_and_the_loss_curve_while_training(browser, stack):  # noqa: F811
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with Client(stack.url, token=stack.token) as api:
        api.request("POST", "/api/v1/datasets/", json={"name": "colours", "rows": training_rows(24)})

    wait = WebDriverWait(browser, 30)
    # The page reloads after the cancel POST: an element read mid-navigation is stale; read again.
    settle = (NoSuchElementException, StaleElementReferenceException)
    browser.get(f"{stack.url}/admin/datasets/dataset/")
    browser.find_element(By.ID, "id_username").send_keys(stack.username)
    browser.find_element(By.ID, "id_password").send_keys(stack.password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    # The "Fine-tune" action on the selected dataset opens the form with it ticked.
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input.action-select"))).click()
    browser.find_element(By.CSS_SELECTOR, "select[name=action] option[value=fine_tune]").click()
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    form = wait.until(ec.presence_of_element_located((By.ID, "fine-tune-form")))
    assert form.find_element(By.CSS_SELECTOR, "input[name=datasets][value=colours]").is_selected()
    base_model = form.find_element(By.ID, "id_base_model")
    base_model.clear()
    base_model.send_keys("tiny-phi3")
    # Long enough to watch: one short bin per step, many epochs (it is cancelled below).
    for field, value in (("epochs", "100"), ("learning_rate", "0.002"), ("max_length", "64"),
                         ("batch_size", "1"), ("gradient_accumulation_steps", "1"),
                         ("eval_steps", "3"), ("eval_generate_rows", "2")):  # fmt: skip
        form.find_element(By.ID, f"id_{field}").send_keys(value)
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    # The run page: the bar, the state and the loss curve move as events arrive over SSE.
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-run-stream]")))
    log = lambda: (
        "\ntrainer log:\n"
        + stack.log_text("trainer")[-3000:]
        + "\nworker log:\n"
        + stack.log_text("worker")[-2000:]
    )
    WebDriverWait(browser, 120, ignored_exceptions=settle).until(
        lambda d: _points(d.find_element(By.ID, "loss-train-path").get_attribute("d")) >= 5,
        message="no loss curve appeared" + log(),
    )
    assert browser.find_element(By.ID, "run-state").text == "running"
    step = int(browser.find_element(By.ID, "run-step").text)
    max_steps = int(browser.find_element(By.ID, "run-max-steps").text)
    assert 0 < step < max_steps
    style = browser.find_element(By.ID, "run-progress-bar").get_attribute("style")
    assert 0 < float(re.search(r"width: ([\d.]+)%", style).group(1)) < 100, style
    live = browser.find_elements(By.CSS_SELECTOR, "#run-events tr.live")  # added by the EventSource
    assert any(" step " in f" {row.text} " for row in live)
    assert browser.find_element(By.ID, "run-loss").text not in ("", "-")
    # Still growing: more points a moment later, drawn inside the chart.
    seen = _points(browser.find_element(By.ID, "loss-train-path").get_attribute("d"))
    WebDriverWait(browser, 60, ignored_exceptions=settle).until(
        lambda d: _points(d.find_element(By.ID, "loss-train-path").get_attribute("d")) > seen,
        message="the loss curve stopped growing" + log(),
    )
    assert browser.find_element(By.ID, "loss-y-max").text
    # Beside it, the eval metrics: token accuracy, exact match and chrF at every eval, and the best one.
    WebDriverWait(browser, 60, ignored_exceptions=settle).until(
        lambda d: _points(d.find_element(By.ID, "eval-chrf-path").get_attribute("d")) >= 2,
        message="no eval metrics were drawn" + log(),
    )
    assert _points(browser.find_element(By.ID, "eval-acc-path").get_attribute("d")) >= 2
    assert _points(browser.find_element(By.ID, "eval-em-path").get_attribute("d")) >= 2
    assert browser.find_element(By.ID, "run-best").is_displayed() and browser.find_element(By.ID, "run-best-step").text

    # Cancel from the page: the run stops within a step and the page says so.
    browser.find_element(By.CSS_SELECTOR, "button[form=cancel-run-form]").click()
    WebDriverWait(browser, 60, ignored_exceptions=settle).until(
        lambda d: d.find_element(By.ID, "run-state").text == "cancelled", message="not cancelled" + log()
    )
    with Client(stack.url, token=stack.token) as api:
        [run] = api.runs()
        assert run["state"] == "cancelled" and run["adapter"] is None and 0 < run["step"] < run["max_steps"]
