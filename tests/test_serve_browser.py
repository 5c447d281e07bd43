"""The page end to end in a real headless browser (Debian's chromium, driven by Selenium through
the system's chromedriver; nothing is downloaded): write a song, lock two lines, redraw, and the
locked lines stand unchanged while the others are drawn again in the form."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")
uvicorn = pytest.importorskip("uvicorn")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from lyricgen.serve.app import create_app  # noqa: E402
from lyricgen.commands.serve import Engine  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--window-size=1000,1400"]


def serve_in_thread(engine: Engine) -> tuple[uvicorn.Server, str]:
    """The app on 127.0.0.1 and a free port, in a thread; its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}/"


def browser(profile: Path) -> webdriver.Chrome:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI"):  # CI installs them (.ci/run): missing there is a failure
            pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    # the system's driver, given by path: Selenium Manager has nothing to fetch
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture
def page(trained, tmp_path, monkeypatch) -> Iterator[tuple[webdriver.Chrome, str]]:
    monkeypatch.setenv("SE_OFFLINE", "true")
    server, url = serve_in_thread(Engine(trained / "best.pt", presets_dir=None))
    driver = browser(tmp_path / "profile")
    try:
        yield driver, url
    finally:
        driver.quit()
        server.should_exit = True
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def fill(driver, **fields) -> None:
    for name, value in fields.items():
        field = driver.find_element(By.ID, name)
        field.clear()
        field.send_keys(str(value))


def song(driver) -> list[dict]:
    """The lines on the page: text, rhyme key, locked."""
    # read in one script: the page draws its list anew as lines come, which would leave
    # elements found one by one stale
    return driver.execute_script(
        "return [...document.querySelectorAll('#song > li')].map(li => ({"
        "text: li.querySelector('.text').value, rhyme: li.querySelector('.rhyme').textContent,"
        "locked: li.classList.contains('locked')}))")


def drawn(driver, count: int) -> list[dict]:
    """Waits for a draw to end with `count` lines on the page; its lines."""
    WebDriverWait(driver, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "idle"
        and len(song(d)) == count and all(line["text"] for line in song(d)))
    return song(driver)


def chars(text: str) -> int:
    return sum(not c.isspace() for c in text)


def test_write_lock_two_lines_and_redraw_the_others_in_form(page):
    driver, url = page
    driver.get(url)
    WebDriverWait(driver, 10).until(lambda d: "corpus" in d.find_element(By.ID, "info").text)
    assert "val ppl" in driver.find_element(By.ID, "info").text
    fill(driver, lines=6, line_length="5-7", rhyme="AABBCC", candidates=6)
    driver.find_element(By.ID, "write").click()
    first = drawn(driver, 6)
    assert all(5 <= chars(line["text"]) <= 7 for line in first)
    assert "first line after" in driver.find_element(By.ID, "status").text

    for i in (0, 3):  # an A line and a B line
        driver.find_element(By.CSS_SELECTOR, f'#song > li[data-index="{i}"] .lock').click()
    driver.find_element(By.ID, "redraw").click()
    second = drawn(driver, 6)
    assert [second[i]["text"] for i in (0, 3)] == [first[i]["text"] for i in (0, 3)]
    assert second[0]["locked"] and second[3]["locked"] and not second[1]["locked"]
    assert all(5 <= chars(line["text"]) <= 7 for line in second)
    assert second[1]["rhyme"] == second[0]["rhyme"]  # the locked A line binds line 2
    assert second[2]["rhyme"] == second[3]["rhyme"]  # and the locked B line line 3, above it
    assert second[4]["rhyme"] == second[5]["rhyme"] != ""
    assert [line["text"] for line in second] != [line["text"] for line in first]

    # what "Download .json" saves: `sample --json`'s list, of the song as the page shows it
    (saved,) = json.loads(driver.execute_script("return songJson()"))
    assert set(saved) == {"prefix", "prefix_used", "sample", "text", "lines", "settings"}
    assert [line["text"] for line in saved["lines"]] == [line["text"] for line in second]
    assert saved["text"] == driver.execute_script("return songText()")

    driver.find_element(By.ID, "undo").click()  # the song before the redraw comes back
    assert [line["text"] for line in song(driver)] == [line["text"] for line in first]


def test_a_line_takes_another_candidate_or_a_hand_written_text_and_is_then_locked(page):
    driver, url = page
    driver.get(url)
    WebDriverWait(driver, 10).until(lambda d: "corpus" in d.find_element(By.ID, "info").text)
    fill(driver, lines=4, line_length="5-7", rhyme="AABB", candidates=6, seed=3)
    driver.find_element(By.ID, "write").send_keys(Keys.ENTER)  # the keyboard alone
    first = drawn(driver, 4)

    line = '#song > li[data-index="1"]'
    driver.find_element(By.CSS_SELECTOR, f"{line} .show").click()
    other = driver.find_element(By.CSS_SELECTOR, f"{line} .others button")
    chosen = other.find_element(By.CLASS_NAME, "candidate").get_attribute("textContent")
    other.click()
    assert song(driver)[1]["text"] == chosen != first[1]["text"]

    text = driver.find_element(By.CSS_SELECTOR, '#song > li[data-index="2"] .text')
    text.send_keys(Keys.CONTROL, "a")  # as a person would (clear() would fire a change)
    text.send_keys("我在窗外的花", Keys.TAB)  # written by hand: locked, described
    WebDriverWait(driver, 10).until(lambda d: song(d)[2]["rhyme"] == "发花")
    assert song(driver)[2]["locked"] and song(driver)[2]["text"] == "我在窗外的花"
    driver.find_element(By.ID, "redraw").click()
    again = drawn(driver, 4)
    assert again[2]["text"] == "我在窗外的花" and again[3]["rhyme"] == "发花"  # B rhymes with it
