"""docs/serve.png, the README's picture of `lyricgen serve`: the page in headless chromium, 640
pixels wide (--width), a song of the page's default form (8 lines of 7-9, AABB) with 8
candidates a line, two lines locked and the rest redrawn, one line's other candidates open.

    python docs/serve_screenshot.py --checkpoint benchmarks/out/jay10/best.pt
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from lyricgen.serve.app import create_app
from lyricgen.commands.serve import Engine

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args()
    os.environ["SE_OFFLINE"] = "true"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    engine = Engine(args.checkpoint, ROOT / "configs")
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                     f"--window-size={args.width},1300", f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        try:
            driver.get(f"http://127.0.0.1:{sock.getsockname()[1]}/")
            WebDriverWait(driver, 10).until(
                lambda d: "corpus" in d.find_element(By.ID, "info").text)
            page = driver.find_element
            for name, value in (("seed", args.seed), ("candidates", 8)):
                page(By.ID, name).clear()
                page(By.ID, name).send_keys(str(value))
            page(By.ID, "write").click()
            def idle(d) -> bool:
                return d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "idle"

            WebDriverWait(driver, 30).until(
                lambda d: idle(d) and d.find_elements(By.CSS_SELECTOR, "#song > li"))
            for i in (0, 1):
                page(By.CSS_SELECTOR, f'#song > li[data-index="{i}"] .lock').click()
            page(By.ID, "redraw").click()
            time.sleep(0.3)
            WebDriverWait(driver, 30).until(idle)
            page(By.CSS_SELECTOR, '#song > li[data-index="4"] .show').click()
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {  # the whole page
                "width": args.width, "height": min(height, 2400), "deviceScaleFactor": 1,
                "mobile": False})
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
            server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
