"""The admin in a real browser: log in, generate a dataset from a real vLLM, watch it finish
live (EventSource on the SSE endpoint), and see the preview.

Everything is real and separate: headless Chromium (Debian's), gunicorn serving the control
plane, the worker, the datagen service (synthtune.stack, as `make up` runs them), and vLLM serving the tiny model as the teacher.
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import require_system_dep
from tests.support.stack import running_stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture
def browser(tmp_path):
    require_system_dep(
        shutil.which("chromium") is not None and shutil.which("chromedriver") is not None,
        "Chromium and chromedriver are missing: apt-get install chromium chromium-driver",
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,1600",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def stack(vllm_server, data_root):
    with running_stack(data_root) as running:
        yield running


def test_generate_from_the_admin_and_watch_it_finish(browser, stack, vllm_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(f"{stack.url}/admin/datasets/dataset/")  # login required: redirected to the login page
    browser.find_element(By.ID, "id_username").send_keys(stack.username)
    browser.find_element(By.ID, "id_password").send_keys(stack.password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    wait.until(ec.element_to_be_clickable((By.ID, "generate-dataset"))).click()
    form = wait.until(ec.presence_of_element_located((By.ID, "generate-form")))
    form.find_element(By.ID, "id_name").send_keys("browser-made")
    form.find_element(By.ID, "id_base_url").send_keys(vllm_server.base_url)
    form.find_element(By.ID, "id_model").send_keys(vllm_server.model)
    form.find_element(By.ID, "id_token").send_keys("browser-token-0123456789")
    Select(form.find_element(By.ID, "id_mode")).select_by_value("from_instructions")
    form.find_element(By.ID, "id_instructions").send_keys(
        "Name a fruit.\nName a colour.\nName a river.\nName a city.\nName a tree."
    )
    form.find_element(By.ID, "id_max_tokens").send_keys("24")
    form.find_element(By.ID, "id_temperature").send_keys("1.0")
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    # The job page: the state and the bar move as events arrive over Server-Sent Events.
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-job-stream]")))
    WebDriverWait(browser, 180).until(
        lambda driver: driver.find_element(By.ID, "job-state").text in FINISHED,
        message="the job did not finish; worker log:\n" + stack.log_text("worker")[-3000:],
    )
    assert browser.find_element(By.ID, "job-state").text == "succeeded"
    kept = int(browser.find_element(By.ID, "job-kept").text)
    assert kept >= 1
    live = browser.find_elements(By.CSS_SELECTOR, "#job-events tr.live")  # added by the EventSource
    assert any("dataset_written" in row.text for row in live)
    assert (
        browser.find_element(By.ID, "job-progress-bar").get_attribute("style")
        == f"width: {round(100 * kept / 5)}%;"
    )
    assert "browser-token-0123456789" not in browser.page_source

    wait.until(ec.visibility_of_element_located((By.ID, "dataset-link"))).click()
    preview = wait.until(ec.presence_of_element_located((By.ID, "dataset-preview")))
    rows = preview.find_elements(By.CSS_SELECTOR, "tr.preview-row")
    assert len(rows) == kept
    assert any("Name a" in row.text for row in rows)
    assert "Status:\nReady" in browser.find_element(By.CSS_SELECTOR, "fieldset").text
