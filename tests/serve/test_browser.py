"""The Gradio app in headless Chromium (Debian's chromium + chromedriver): upload a picture, ask, read the
answer, keep a screenshot in artifacts/. Without the browser these skip with the packages to install
(tests/serve/browsers.py); CI installs it and sets MM_REQUIRE_BROWSER=1, so there they cannot skip."""

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.golden import GOLDEN
from tests.serve.browsers import CHROMEDRIVER, CHROMIUM, need_browser, skip_reason

ARTIFACTS = Path(__file__).parents[2] / "artifacts"

if (reason := skip_reason()) is not None:
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="session", autouse=True)
def _browser_installed():
    """First of all (session scope, autouse): under MM_REQUIRE_BROWSER=1 a missing browser fails each test
    here, before the model and the app are started."""
    need_browser()


@pytest.fixture
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    yield driver
    driver.quit()


def test_a_real_question_in_the_browser(gradio_url, browser):
    golden = GOLDEN["three_shapes"]
    image, expected = golden.path(), golden.answer
    browser.get(gradio_url)
    wait = WebDriverWait(browser, 60)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#image-input input[type=file]")))
    upload.send_keys(str(image))
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#image-input img")))
    box = browser.find_element(By.CSS_SELECTOR, "#query textarea")
    box.send_keys(golden.question)
    browser.find_element(By.CSS_SELECTOR, "#send").click()

    def answered(driver):
        bots = driver.find_elements(By.CSS_SELECTOR, "#chatbot [data-testid='bot']")
        return bots and bots[-1].text.strip() == expected.strip() and bots[-1]

    wait.until(answered)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "gradio_chat.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    user = browser.find_elements(By.CSS_SELECTOR, "#chatbot [data-testid='user']")
    assert golden.question in user[-1].text


def test_compare_report_renders_in_the_browser(browser, tiny, tmp_path):
    """The self-contained report.html: every plot and key frame decodes in a real browser."""
    import mm
    from mm.compare_report import save_report

    golden = GOLDEN["compare_left_right"]  # two example clips that differ in motion
    result = mm.compare_clips(*golden.media()["video"], model=tiny)
    assert result.difference == golden.answer
    page = save_report(result, tmp_path / "report")
    browser.get(page.resolve().as_uri())
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 4
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", im)
               for im in images)
    assert result.difference in browser.find_element(By.TAG_NAME, "body").text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "compare_report.png"))
