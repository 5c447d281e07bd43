"""`lyricgen serve`'s API through FastAPI's TestClient: songs kept in their form, locked lines
unchanged and rhymed with, a line's candidates, bounds and bad values refused naming the field,
a seed that repeats, concurrent requests, the stream; and `serve` without its extra."""

from __future__ import annotations

import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from conftest import assert_one_line_error, cli  # noqa: E402
from lyricgen.songs import rhyme  # noqa: E402
from lyricgen.serve.app import create_app  # noqa: E402
from lyricgen.commands.serve import Engine  # noqa: E402

ROOT = Path(__file__).parent.parent
FORM = {"lines": 6, "line_length": "5-7", "rhyme": "AABBCC", "candidates": 6}


@pytest.fixture(scope="module")
def client(trained) -> TestClient:
    return TestClient(create_app(Engine(trained / "best.pt", presets_dir=ROOT / "configs")))


def write(client: TestClient, **body) -> dict:
    response = client.post("/api/song", json={**FORM, **body})
    assert response.status_code == 200, response.text
    return response.json()


def texts(song: dict) -> list[str]:
    return [line["text"] for line in song["lines"]]


def chars(text: str) -> int:
    return sum(not c.isspace() for c in text)


def test_a_song_keeps_its_form_and_is_the_song_sample_writes(client, trained):
    song = write(client, seed=3)
    assert len(song["lines"]) == 6 and song["text"] == "\n".join(texts(song))
    assert all(5 <= chars(text) <= 7 for text in texts(song))
    keys = [line["rhyme"] for line in song["lines"]]
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[4] == keys[5] and None not in keys
    assert all(len(line["others"]) >= 1 for line in song["lines"])
    assert song["seconds"] > 0
    # one path with `sample`: the same options and seed give the same song and JSON
    done = cli("sample", "--checkpoint", trained / "best.pt", "--lines", 6, "--line-length",
               "5-7", "--rhyme", "AABBCC", "--candidates", 6, "--seed", 3, "--json")
    (sampled,) = json.loads(done.stdout)
    assert sampled["text"] == song["text"]
    assert sampled["lines"] == [{k: v for k, v in line.items() if k != "others"}
                                for line in song["lines"]]
    assert set(sampled) == set(song) - {"seconds", "warnings"} and song["warnings"] == []
    assert {**sampled["settings"], "checkpoint": ""} == {**song["settings"], "checkpoint": ""}


def test_locked_lines_stay_and_bind_the_rhyme_of_the_lines_around_them(client):
    first = texts(write(client, seed=5))
    for seed in (6, 7):
        song = write(client, seed=seed, locked={0: first[0], 3: first[3]})
        lines = song["lines"]
        assert texts(song)[0] == first[0] and texts(song)[3] == first[3]
        assert lines[1]["rhyme"] == rhyme.line_key(first[0])  # after locked line 1 (A)
        assert lines[2]["rhyme"] == rhyme.line_key(first[3])  # before locked line 4 (B)
        assert all(5 <= chars(t) <= 7 for i, t in enumerate(texts(song)) if i not in (0, 3))
    hand = write(client, seed=1, locked={1: "我在窗外的花"})  # a line written by hand
    assert texts(hand)[1] == "我在窗外的花" and hand["lines"][0]["rhyme"] == "发花"


def test_a_prefix_starts_the_first_line_until_that_line_is_locked(client):
    song = write(client, seed=2, prefix="分开")
    assert texts(song)[0].startswith("分开") and song["prefix_used"] == "分开"
    again = write(client, seed=2, prefix="分开", locked={0: texts(song)[0]})
    assert texts(again)[0] == texts(song)[0] and again["prefix_used"] == ""


def test_the_candidates_of_a_line_ranked_in_its_place(client):
    song = texts(write(client, seed=8))
    response = client.post("/api/candidates", json={**FORM, "seed": 9, "song": song, "line": 1})
    assert response.status_code == 200, response.text
    ranked = response.json()["candidates"]
    assert 2 <= len(ranked) <= 6 and len({c["text"] for c in ranked}) == len(ranked)
    assert ranked[0]["score"] is not None and "others" not in ranked[0]
    assert all(c["rhyme"] == rhyme.line_key(song[0]) for c in ranked)  # line 2 rhymes with 1
    assert all(5 <= chars(c["text"]) <= 7 for c in ranked)
    # the best is the line a redraw of that line alone, on the same seed, keeps
    redraw = write(client, seed=9, locked={i: t for i, t in enumerate(song) if i != 1})
    assert texts(redraw)[1] == ranked[0]["text"]
    assert redraw["lines"][1]["others"] == [c["text"] for c in ranked[1:]]


def test_a_seed_repeats_a_song_and_a_song_without_one_says_its_seed(client):
    assert write(client, seed=11) == {**write(client, seed=11), "seconds": pytest.approx(0, abs=9)}
    assert texts(write(client, seed=11)) == texts(write(client, seed=11))
    assert texts(write(client, seed=11)) != texts(write(client, seed=12))
    unseeded = write(client)
    assert 0 <= unseeded["settings"]["seed"] < 2**53  # the page's numbers hold it exactly
    assert texts(write(client, seed=unseeded["settings"]["seed"])) == texts(unseeded)


def test_concurrent_requests_each_draw_their_own_song(client):
    alone = {seed: texts(write(client, seed=seed)) for seed in range(4)}
    with ThreadPoolExecutor(4) as pool:
        together = dict(zip(range(4), pool.map(lambda s: texts(write(client, seed=s)), range(4))))
    assert together == alone


def test_the_stream_sends_each_line_as_drawn_then_the_song(client):
    with client.stream("POST", "/api/song/stream", json={**FORM, "seed": 4}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [block for block in response.read().decode().split("\n\n") if block]
    kinds = [block.split("\n")[0] for block in events]
    assert kinds == ["event: line"] * 6 + ["event: done"]
    data = [json.loads(block.split("\n")[1][len("data: "):]) for block in events]
    assert [d["index"] for d in data[:6]] == list(range(6))
    assert [d["text"] for d in data[:6]] == texts(data[6]) == texts(write(client, seed=4))
    assert all(isinstance(o, dict) and "rhyme" in o for d in data[:6] for o in d["others"])


@pytest.mark.parametrize("body, field", [
    ({"lines": 0}, "lines"), ({"lines": 65}, "lines"), ({"candidates": 65}, "candidates"),
    ({"candidates": 0}, "candidates"), ({"line_length": "61"}, "line_length"),
    ({"line_length": "seven"}, "line_length"), ({"rhyme": "A1"}, "rhyme"),
    ({"rhyme_with": "xy"}, "rhyme_with"), ({"temperature": 0}, "temperature"),
    ({"max_copy": 1}, "max_copy"), ({"max_copy": 33}, "max_copy"), ({"seed": -1}, "seed"),
    ({"prefix": "分" * 201}, "prefix"),
    ({"prefix": "😀"}, "prefix"), ({"prefix": "a\nb\nc\nd\ne\nf\ng"}, "prefix"),
    ({"acrostic": "分" * 65, "lines": None}, "acrostic"), ({"acrostic": "分开"}, "acrostic"),
    ({"locked": {"6": "我在窗外的花"}}, "locked"), ({"locked": {"1": "a\nb"}}, "locked"),
    ({"locked": {"1": "花" * 201}}, "locked"), ({"preset": "nowhere"}, "preset"),
    ({"lines": None}, "lines"), ({"colour": "red"}, "colour"),
], ids=lambda v: json.dumps(v, ensure_ascii=False)[:40] if isinstance(v, dict) else v)
def test_bad_values_and_requests_past_the_bounds_are_refused_naming_the_field(client, body,
                                                                              field):
    response = client.post("/api/song", json={**FORM, **body})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field and problem["message"] and "\n" not in problem["message"]


@pytest.mark.parametrize("path, body, field", [
    ("/api/describe", {"lines": ["花" * 201]}, "lines"),
    ("/api/candidates", {**FORM, "song": ["花" * 201], "line": 0}, "song"),
])
def test_a_line_written_past_the_bound_is_refused_naming_its_field(client, path, body, field):
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_a_body_that_is_not_json_is_refused_as_a_whole(client):
    response = client.post("/api/song", content=b'{"lines": 4,',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["field"] == "form", response.text


def test_a_preset_sets_what_the_request_leaves_out(client):
    info = client.get("/api/info").json()
    assert info["presets"]["song"]["rhyme"] == "AABB" and info["val_ppl"] > 1
    song = write(client, preset="song", lines=4, line_length=None, rhyme=None, candidates=4,
                 seed=1)
    assert len(song["lines"]) == 4 and song["settings"]["words"] == 6.0
    assert all(7 <= chars(t) <= 9 for t in texts(song))


def test_the_page_its_files_the_api_description_and_lines_described(client):
    assert "<form" in client.get("/").text
    assert client.get("/static/page.js").status_code == 200
    assert client.get("/static/engine.py").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/song", "/api/song/stream", "/api/candidates", "/api/info"} <= set(paths)
    (line,) = client.post("/api/describe", json={"lines": ["我在窗外的花"]}).json()
    assert line["rhyme"] == "发花" and line["copied"] >= 0


def test_serve_without_its_extra_says_how_to_install_it(trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` fails
    result = cli("serve", "--checkpoint", trained / "best.pt")
    assert_one_line_error(result, 1, 'pip install -e ".[serve]"', 'pip install "lyricgen[serve]"')


def test_serve_on_a_port_in_use_is_a_one_line_error(trained):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = cli("serve", "--checkpoint", trained / "best.pt", "--port",
                     taken.getsockname()[1])
    assert_one_line_error(result, 1, "cannot listen on 127.0.0.1")


def test_the_drawer_runs_each_drawing_on_its_own_thread_and_tells_errors():
    """`serve` draws on the main thread (serve/drawer.py says why): functions sent from other
    threads run on the thread that serves them, their results and errors come back, and once
    it stops a drawing asked for is refused."""
    import threading
    from lyricgen.serve.drawer import Drawer, Stopping

    drawer, answers = Drawer(), []

    def ask() -> None:
        answers.append(drawer(lambda: threading.current_thread().name))
        try:
            drawer(lambda: 1 / 0)
        except ZeroDivisionError:
            answers.append("raised")

    asking = threading.Thread(target=ask)
    asking.start()
    drawer.serve_until(lambda: not asking.is_alive())
    assert answers == [threading.current_thread().name, "raised"]
    refused = []

    def late() -> None:
        try:
            drawer(lambda: 1)
        except Stopping:
            refused.append(True)

    asking = threading.Thread(target=late)
    asking.start()
    asking.join(5)
    assert refused == [True]


def test_serve_prints_its_url_answers_and_stops_cleanly_on_ctrl_c(trained):
    import signal
    import subprocess
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "lyricgen", "serve", "--checkpoint",
                               str(trained / "best.pt"), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line + server.stderr.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=10) as answer:
            assert json.load(answer)["epochs"] >= 1
        time.sleep(0.2)
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert out.strip() == "stopped" and "Traceback" not in err


@pytest.mark.parametrize("song, line, field", [
    (["我在窗外的花"] * 6, 6, "line"), (["我在窗外的花"] * 5, 1, "song"),
    (["我在窗外的花"] * 5 + ["花" * 201], 1, "song"), (["我在窗外的花"] * 6, -1, "line")])
def test_the_candidates_of_a_line_outside_the_song_are_refused(client, song, line, field):
    response = client.post("/api/candidates", json={**FORM, "song": song, "line": line})
    assert response.status_code == 422 and response.json()["field"] == field, response.text
