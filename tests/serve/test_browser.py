"""The Gradio app in headless Chromium (Debian's chromium + chromedriver): upload a picture, ask, read the
answer, keep a screenshot in artifacts/ (CI installs the browser)."""

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from demos.app import ASSETS

ARTIFACTS = Path(__file__).parents[2] / "artifacts"


@pytest.fixture
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    yield driver
    driver.quit()


def test_a_real_question_in_the_browser(gradio_url, browser, tiny):
    image = ASSETS / "three_shapes.png"
    expected = "There are three shapes."
    assert tiny.chat("How many shapes are there?", image=str(image))[0] == expected
    browser.get(gradio_url)
    wait = WebDriverWait(browser, 60)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#image-input input[type=file]")))
    upload.send_keys(str(image))
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#image-input img")))
    box = browser.find_element(By.CSS_SELECTOR, "#query textarea")
    box.send_keys("How many shapes are there?")
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
    assert "How many shapes are there?" in user[-1].text
