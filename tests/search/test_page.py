"""The search page end to end, in a real headless browser (Debian's Chromium driven by selenium) against
``contrast serve`` running as a user starts it: type a caption and see the images the service finds
for it (with their captions, scores and the query time), upload an image and see its neighbours,
itself first."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI, require

ROOT = Path(__file__).resolve().parents[2]


def _browser():
    require("selenium")
    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver):
        message = "Chromium and its driver are not installed (apt-get install chromium chromium-driver)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="module")
def served(collection):
    root, ckpt, images, captions = collection
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [
        sys.executable,
        "-m",
        "contrast.cli",
        "serve",
        str(root / "out"),
        "--ckpt",
        str(ckpt),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import httpx

    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"contrast serve did not start: {process.stdout.read()[-2000:]}")
    yield url, root, images, captions
    process.terminate()
    process.wait(timeout=30)


def test_type_a_caption_then_upload_an_image_in_a_real_browser(served, tmp_path):
    import httpx
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, root, images, captions = served
    browser = _browser()
    try:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 30)
        browser.find_element(By.ID, "query").send_keys(captions[3])
        browser.find_element(By.ID, "search").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".result")) == 12)
        cards = browser.find_elements(By.CSS_SELECTOR, ".result")
        expected = httpx.get(url + "/search", params={"text": captions[3], "k": 12}).json()["results"]
        assert [int(c.get_attribute("data-id")) for c in cards] == [r["id"] for r in expected]
        assert cards[0].find_element(By.CLASS_NAME, "caption").text == expected[0]["caption"]
        assert cards[0].find_element(By.CLASS_NAME, "score").text.startswith("score ")
        wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "results in"))
        wait.until(
            lambda b: b.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        )
        assert browser.execute_script("return document.images[0].naturalWidth") == 32  # the image itself, served

        picture = tmp_path / "query.png"
        Image.fromarray(images[7].permute(1, 2, 0).numpy()).save(picture)
        browser.find_element(By.ID, "upload").send_keys(str(picture))
        browser.find_element(By.ID, "search-image").click()
        wait.until(
            lambda b: (
                b.find_elements(By.CSS_SELECTOR, ".result")
                and b.find_elements(By.CSS_SELECTOR, ".result")[0].get_attribute("data-id") == "7"
            )
        )
        first = browser.find_elements(By.CSS_SELECTOR, ".result")[0]
        assert float(first.find_element(By.CLASS_NAME, "score").text.split()[1]) > 0.99
        assert first.find_element(By.CLASS_NAME, "caption").text == captions[7]
    finally:
        browser.quit()
