"""A newcomer's walk through the pipeline in a real browser, from the login page to a
comparison, by clicking only: the home page's Generate → the job's live page → Home → Start
fine-tune (the new dataset ticked, the base model vLLM serves filled in) → the run's live page
→ its adapter → Load → Home → Compare → both outputs side by side.

Everything is real and separate: headless Chromium (Debian's), gunicorn serving the control
plane, the worker, datagen, the trainer and the serving proxy (synthtune.stack, as `make up`
runs them), and the session's vLLM serving the tiny Phi-3, as the teacher and as the target.
Kept small (5 rows of 16 tokens, one epoch) so the walk takes about a minute on 2 cores.
"""

from __future__ import annotations

import pytest

from synthtune.client import ApiError, Client
from tests.control_plane.test_admin_browser import browser  # noqa: F401  (the fixture)
from tests.support.stack import running_stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FINISHED = ("succeeded", "failed", "cancelled")
INSTRUCTIONS = "Name a fruit.\nName a colour.\nName a river.\nName a city.\nName a tree."


@pytest.fixture
def stack(data_root, tiny_models, vllm_server):
    env = {
        "SYNTHTUNE_MODELS_ROOT": str(tiny_models),
        "SYNTHTUNE_VLLM_URL": vllm_server.url,
        "SYNTHTUNE_VLLM_MAX_LORA_RANK": "8",
    }
    with running_stack(data_root, **env) as running:
        yield running


def _steps(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        " ".join(h2.text.split())
        for h2 in driver.find_elements(By.CSS_SELECTOR, "#pipeline .pipeline-step h2")
    ]


def test_a_newcomer_goes_from_login_to_a_comparison_by_clicking(browser, stack, vllm_server):  # noqa: F811
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 30)
    settle = (NoSuchElementException, StaleElementReferenceException)
    logs = lambda *names: "".join(f"\n{name} log:\n{stack.log_text(name)[-2500:]}" for name in names)

    def click(element_id: str) -> None:
        wait.until(ec.element_to_be_clickable((By.ID, element_id))).click()

    def home() -> None:
        browser.find_element(By.CSS_SELECTOR, "div.breadcrumbs a").click()  # "Home"
        wait.until(ec.presence_of_element_located((By.ID, "pipeline")))

    browser.get(f"{stack.url}/admin/")  # the one URL typed: login required, so the login page
    browser.find_element(By.ID, "id_username").send_keys(stack.username)
    browser.find_element(By.ID, "id_password").send_keys(stack.password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    # The home page: the pipeline first, in order, with nothing done yet.
    wait.until(ec.presence_of_element_located((By.ID, "pipeline")))
    assert _steps(browser) == ["1 Generate", "2 Fine-tune", "3 Serve", "4 Compare"]
    assert browser.find_element(By.ID, "running-none").text == "Nothing is running."
    apps = browser.find_element(By.ID, "content-main")
    assert browser.find_element(By.ID, "step-compare").location["y"] < apps.location["y"]

    # 1 Generate: a few short rows with the session's vLLM as the teacher.
    click("action-generate")
    form = wait.until(ec.presence_of_element_located((By.ID, "generate-form")))
    form.find_element(By.ID, "id_name").send_keys("newcomer")
    form.find_element(By.ID, "id_base_url").send_keys(vllm_server.base_url)
    form.find_element(By.ID, "id_model").send_keys(vllm_server.model)
    Select(form.find_element(By.ID, "id_mode")).select_by_value("from_instructions")
    form.find_element(By.ID, "id_instructions").send_keys(INSTRUCTIONS)
    form.find_element(By.ID, "id_max_tokens").send_keys("16")
    form.find_element(By.ID, "id_temperature").send_keys("1.0")
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 180, ignored_exceptions=settle).until(
        lambda d: d.find_element(By.ID, "job-state").text in FINISHED,
        message="the job did not finish" + logs("datagen", "worker"),
    )
    assert browser.find_element(By.ID, "job-state").text == "succeeded"

    # 2 Fine-tune, from the home page: the new dataset comes ticked, the model vLLM serves filled in.
    home()
    assert browser.find_element(By.ID, "latest-dataset").text == "newcomer"
    click("action-fine-tune")
    form = wait.until(ec.presence_of_element_located((By.ID, "fine-tune-form")))
    assert form.find_element(By.CSS_SELECTOR, "input[name=datasets][value=newcomer]").is_selected()
    assert (
        form.find_element(By.ID, "id_base_model").get_attribute("value") == vllm_server.model == "tiny-phi3"
    )
    for field, value in (("epochs", "1"), ("learning_rate", "0.005"), ("max_length", "128")):
        form.find_element(By.ID, f"id_{field}").send_keys(value)
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    message = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    assert message.text.startswith("Fine-tuning run ") and message.text.endswith(" started.")
    WebDriverWait(browser, 300, ignored_exceptions=settle).until(
        lambda d: d.find_element(By.ID, "run-state").text in FINISHED,
        message="the run did not finish" + logs("trainer", "worker"),
    )
    assert browser.find_element(By.ID, "run-state").text == "succeeded", browser.find_element(
        By.ID, "run-error"
    ).text + logs("trainer")

    # 3 Serve: the run page links its adapter; that page loads it.
    link = WebDriverWait(browser, 30, ignored_exceptions=settle).until(
        ec.visibility_of_element_located((By.ID, "adapter-link"))
    )
    adapter = link.text
    link.click()
    assert (
        "Not loaded into vLLM." in wait.until(ec.presence_of_element_located((By.ID, "adapter-loaded"))).text
    )
    try:
        click("load-adapter")
        message = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li")))
        assert message.text.startswith(f"Adapter {adapter}: loaded as {adapter} on "), message.text + logs(
            "serving-proxy"
        )
        assert browser.find_element(By.ID, "adapter-loaded").text.startswith(f"Loaded as {adapter} on ")

        # 4 Compare, from the home page: it now shows the run, the adapter and where it is loaded.
        home()
        assert browser.find_element(By.ID, "latest-adapter").text == adapter
        assert f"{adapter} loaded" in browser.find_element(By.ID, "step-serve").text
        click("action-compare")
        form = wait.until(ec.presence_of_element_located((By.ID, "compare-form")))
        assert Select(form.find_element(By.ID, "id_one-adapter")).first_selected_option.text == adapter
        form.find_element(By.ID, "id_one-prompt").send_keys("Name a fruit.")
        form.find_element(By.ID, "id_one-max_tokens").send_keys("16")
        form.find_element(By.ID, "compare-submit").click()
        result = WebDriverWait(browser, 120).until(
            ec.presence_of_element_located((By.ID, "compare-result")),
            message="no comparison" + logs("serving-proxy"),
        )
        base = result.find_element(By.ID, "compare-base")
        tuned = result.find_element(By.ID, "compare-adapter")
        assert base.is_displayed() and tuned.is_displayed()
        assert "tiny-phi3" in base.find_element(By.TAG_NAME, "h3").text
        assert adapter in tuned.find_element(By.TAG_NAME, "h3").text
        for side in ("base", "adapter"):
            assert browser.find_element(By.ID, f"compare-{side}-finish").text in ("stop", "length")

        home()  # and the home page remembers it
        assert browser.find_element(By.ID, "latest-comparison").text.startswith("One #")
        assert browser.find_element(By.ID, "running-none").text == "Nothing is running."
    finally:
        with Client(stack.url, token=stack.token, timeout_s=60) as api:
            try:
                api.unload_adapter(adapter)  # leave the session's vLLM as it was
            except ApiError:
                pass
