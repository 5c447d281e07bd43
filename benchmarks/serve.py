"""Writing songs on the page (`lyricgen serve`): the time from a request to its first line and
to the whole song, as the page sees them through the streamed API, and songs per second with
8 clients at once against one.

    python benchmarks/serve.py --checkpoint benchmarks/out/jay10/best.pt [--songs 12]

The server is `lyricgen serve` in a process of its own on 127.0.0.1 and a free port; the
clients are threads here, each reading the server-sent events as they come. A song is the
issue's: 16 lines of 7-9 characters, AABB, 16 candidates a line (goals: first line within
0.3 s, the song within 1 s). Each timed request has its own seed; a first request warms up.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from common import ROOT, record

SONG = {"lines": 16, "line_length": "7-9", "rhyme": "AABB", "candidates": 16}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(checkpoint: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "lyricgen", "serve", "--checkpoint",
                               str(checkpoint), "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()  # the URL, once it listens
    if "http://" not in line:
        server.kill()
        raise SystemExit(f"lyricgen serve did not start: {line}{server.stderr.read()}")
    return server


def timed_song(url: str, seed: int) -> tuple[float, float]:
    """Seconds from the request to its first line, and to the whole song."""
    began = time.perf_counter()
    first = None
    with httpx.stream("POST", url + "api/song/stream", json={**SONG, "seed": seed},
                      timeout=120) as response:
        response.raise_for_status()
        for text in response.iter_lines():
            if text.startswith("event: line") and first is None:
                first = time.perf_counter() - began
            elif text.startswith("event: error"):
                raise SystemExit(f"the server refused: {text}")
            elif text.startswith("data: ") and '"seconds"' in text:
                json.loads(text[len("data: "):])  # the whole song, read
    return first, time.perf_counter() - began


def songs_per_second(url: str, clients: int, songs: int, seed: int) -> float:
    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda s: timed_song(url, s), range(seed, seed + songs)))
    return songs / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--songs", type=int, default=12, help="timed songs per measure")
    args = parser.parse_args()
    port = free_port()
    server = start_server(args.checkpoint.resolve(), port)
    url = f"http://127.0.0.1:{port}/"
    try:
        timed_song(url, 0)  # warm-up
        times = [timed_song(url, seed) for seed in range(1, args.songs + 1)]
        one = songs_per_second(url, 1, args.songs, 100)
        eight = songs_per_second(url, 8, 2 * args.songs, 200)
    finally:
        server.terminate()
        server.wait(30)
    firsts, wholes = [t[0] for t in times], [t[1] for t in times]
    lines = [
        f"Checkpoint {args.checkpoint}; a song: {SONG['lines']} lines of {SONG['line_length']} "
        f"characters, {SONG['rhyme']}, {SONG['candidates']} candidates a line; "
        f"{args.songs} songs per figure, each its own seed, through the streamed API "
        "(`lyricgen serve` in its own process, clients in threads).",
        "",
        "| measure | median | slowest | goal |",
        "|---|---|---|---|",
        f"| request to first line | {statistics.median(firsts):.3f} s | {max(firsts):.3f} s "
        "| 0.3 s |",
        f"| request to whole song | {statistics.median(wholes):.3f} s | {max(wholes):.3f} s "
        "| 1 s |",
        "",
        f"Songs per second: one client {one:.2f}, 8 clients at once {eight:.2f} "
        f"({eight / one:.2f}x): the server draws one song at a time, on its main thread, where "
        "PyTorch's CPU ops ran a song about twice as fast as on a second thread "
        "(lyricgen/serve/drawer.py); 8 clients wait their turn.",
    ]
    record("Writing songs on the page (serve.py)", "python benchmarks/serve.py "
           + " ".join(sys.argv[1:]), lines)


if __name__ == "__main__":
    main()
