"""`lyricgen serve`: one checkpoint, loaded once and shared read-only by every request of the
page (lyricgen/serve/), served on a local address until Ctrl-C. A request becomes a
SampleConfig, a form and a prefix by `sample`'s own functions, then a SongRequest with its own
generator, written by a Songwriter. The web libraries are the [serve] extra: without them
`serve` says how to install them."""

from __future__ import annotations

import ipaddress
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lyricgen import checkpoint
from lyricgen.commands.sample import (SETTINGS, check_starts, copy_index, result, seeded,
                                      settings, settings_used, song_form, start)
from lyricgen.config import SampleConfig
from lyricgen.copies import DEFAULT_RUN, CopyIndex
from lyricgen.errors import LyricgenError, UsageError, one_line
from lyricgen.serve.presets import find_presets
from lyricgen.songs.form import check_vocab
from lyricgen.songs.songwriter import Line, Songwriter, SongRequest, line_of

try:  # pydantic's models: with the [serve] extra (serve() says how to install it)
    from lyricgen.serve.api import (MAX_CANDIDATES, MAX_LINE_LENGTH, MAX_LINES, CandidatesBody,
                                    FieldError, SongBody, check_bounds, field_of)
except ImportError:  # pragma: no cover - only without the extra
    pass

INSTALL = 'lyricgen serve needs its web libraries: pip install -e ".[serve]" in a clone (or ' \
          'pip install "lyricgen[serve]")'


def serve(path: Path, host: str, port: int, *, presets: Path = Path("configs"),
          log: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> None:
    """Load `path` once, then serve the page and its API on host:port until Ctrl-C."""
    try:
        import fastapi  # noqa: F401 - only to know that the extra is installed
        import uvicorn
    except ImportError:
        raise LyricgenError(INSTALL) from None
    from lyricgen.serve.app import create_app
    from lyricgen.serve.drawer import Drawer

    drawer = Drawer()
    engine = Engine(path, presets, warn=warn, drawer=drawer)
    engine.warm()
    sock = listen(host, port)  # bound here, so that a port in use is a one-line error
    address = sock.getsockname()
    shown = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:  # (less a scope)
        warn(f"--host {host}: the page is reachable from other machines, with no login; "
             "anyone who can reach this address can use it (--host 127.0.0.1 keeps it local)")
    info = engine.info()
    log(f"writing songs with {path} (corpus {info['corpus']}) at http://{shown}:{address[1]}/ "
        "(API at /docs); Ctrl-C stops it")
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning",
                                           timeout_graceful_shutdown=5))
    web = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    # a clean stop on either (SIGINT too: a shell may start a background job with it ignored)
    before = {stop: signal.signal(stop, signal.default_int_handler)  # (KeyboardInterrupt)
              for stop in (signal.SIGINT, signal.SIGTERM)}
    web.start()
    try:
        drawer.serve_until(lambda: not web.is_alive())  # songs drawn here, on the main thread
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True  # no more requests; those under way end
        web.join(10)
        for stop, handler in before.items():
            signal.signal(stop, handler)
    log("stopped")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or a one-line error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections wait from now on, while the server starts
    except OSError as e:
        raise LyricgenError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


@dataclass
class Job:
    """A request checked and ready to draw."""
    prefix: str  # as given
    used: str  # as the model read it
    request: SongRequest
    writer: Songwriter
    settings: dict[str, Any]
    warnings: list[str]  # lines kept though they break a soft rule (no candidate did better)


class Engine:
    def __init__(self, path: Path, presets_dir: Path | None = Path("configs"),
                 warn: Callable[[str], None] = print,
                 drawer: Callable[[Callable[[], Any]], Any] = lambda draw: draw()):
        # `drawer` runs each drawing: here, or on the main thread (serve/drawer.py says why)
        self.path, self.warn, self.drawer = Path(path), warn, drawer
        try:  # the training state holds the history, for the page's val ppl
            self.saved = checkpoint.load(path, training_state=True)
        except checkpoint.CheckpointError:
            self.saved = checkpoint.load(path)
        # The model, the counts and the copy indexes are only read while drawing, each
        # request with streams of its own: one copy serves every request.
        self.model, self.vocab = self.saved.build_model(), self.saved.vocab
        self.counts = self.saved.count_model()
        self._copies: dict[int | None, CopyIndex | None] = {}
        self._lock = threading.Lock()
        self.presets = find_presets(presets_dir)

    def warm(self) -> None:
        """Draw one short line, so that the first request does not pay for loading the
        word list and building the copy index."""
        try:
            self.write(self.prepare(SongBody(lines=1, candidates=2, seed=0, others=False)))
        except FieldError:
            pass  # a model without lines: every request will say why

    def info(self) -> dict[str, Any]:
        """What the page says it runs: the checkpoint, its corpus, size and val ppl."""
        s, m = self.saved, self.saved.config.model
        vals = [row["val_ppl"] for row in s.history if row.get("val_ppl") is not None]
        return {"checkpoint": str(self.path), "corpus": Path(str(s.config.data.data)).name,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "model": f"{m.num_layers} x {m.hidden_size} LSTM ({m.backend}), "
                         f"{len(self.vocab):,} characters",
                "epochs": len(s.history), "val_ppl": min(vals) if vals else None,
                "presets": {name: table for name, (_, table) in self.presets.items()},
                "copy_run": DEFAULT_RUN,  # a run this long copies the corpus (sample's mark)
                "limits": {"lines": MAX_LINES, "candidates": MAX_CANDIDATES,
                           "line_length": MAX_LINE_LENGTH}}

    def prepare(self, body: SongBody) -> Job:
        """The request as `sample` would take it, or a FieldError naming what is wrong."""
        try:
            return self._prepare(body)
        except LyricgenError as e:
            message = one_line(str(e))
            raise FieldError(field_of(message), message) from None

    def _prepare(self, body: SongBody) -> Job:
        given = {k: v for k, v in body.model_dump().items() if k in SETTINGS and v is not None}
        preset = None
        if body.preset is not None:
            if body.preset not in self.presets:
                raise FieldError("preset", f"no preset {body.preset!r}; the presets are "
                                 + (", ".join(self.presets) or "none"))
            preset = str(self.presets[body.preset][0])
        cfg = settings(preset, {**given, "num_samples": 1})
        if cfg.seed is None:  # a seed that the page's JavaScript numbers hold exactly
            cfg = replace(cfg, seed=secrets.randbelow(2**53))
        if cfg.lines is None and cfg.acrostic is None:  # (sample would write free text)
            raise UsageError("a song needs --lines N (or --acrostic)")
        form = song_form(cfg)
        check_bounds(cfg, form)
        check_vocab(form, self.vocab)
        generator = seeded(cfg)
        prefix, held = body.prefix, body.prefix.count("\n") + bool(body.prefix.split("\n")[-1])
        if body.locked and min(body.locked) < held:  # the locked line stands for the prefix
            prefix = ""
        ids, used = start(self.vocab, prefix, "error", generator, self.warn)
        check_starts(form, [used])
        warnings: list[str] = []
        request = SongRequest(ids, used, form, cfg, generator, dict(body.locked), body.others,
                              warnings.append)
        writer = Songwriter(self.model, self.vocab, self.copies(cfg),
                            self.counts if cfg.counts else None)
        return Job(prefix, used, request, writer,
                   settings_used(cfg, generator, self.path, self.saved.config.model.backend),
                   warnings)

    def copies(self, cfg: SampleConfig) -> CopyIndex | None:
        """The corpus's copy index for `cfg.max_copy`, built once for each value asked."""
        with self._lock:
            if cfg.max_copy not in self._copies:
                if len(self._copies) >= 4:  # each holds about 8 bytes a corpus character
                    del self._copies[next(iter(self._copies))]  # the oldest
                self._copies[cfg.max_copy] = copy_index(self.saved, cfg, self.warn)
            return self._copies[cfg.max_copy]

    def write(self, job: Job, on_line: Callable[[Line], None] | None = None) -> dict[str, Any]:
        """The song, as one result of `sample --json` with the seconds its drawing took and
        what it warned of."""
        def draw() -> tuple[list[Line], float]:
            began = time.perf_counter()
            (song,) = job.writer.write(job.request, on_line)
            return song, time.perf_counter() - began

        try:
            song, seconds = self.drawer(draw)
        except LyricgenError as e:
            message = one_line(str(e))
            raise FieldError(field_of(message), message) from None
        return {**result(job.prefix, job.used, 0, song, job.settings), "seconds": round(seconds, 4),
                "warnings": job.warnings}

    def candidates(self, body: CandidatesBody) -> dict[str, Any]:
        """Line `body.line` drawn again after the song above it, the others kept: its
        candidates, best first."""
        if not 0 <= body.line < len(body.song):
            raise FieldError("line", f"line {body.line + 1}: the song has {len(body.song)} lines")
        locked = {i: text for i, text in enumerate(body.song) if i != body.line}
        job = self.prepare(body.model_copy(update={"locked": locked, "others": True}))
        if len(body.song) != job.request.form.lines:
            raise FieldError("song", f"the song has {len(body.song)} lines, its form "
                             f"{job.request.form.lines}")
        song = self.write(job)
        line = song["lines"][body.line]
        ranked = [{k: v for k, v in line.items() if k != "others"}]
        ranked += [self.describe(text, job.writer.copies) for text in line.get("others", [])]
        return {"line": body.line, "candidates": ranked, "seconds": song["seconds"],
                "settings": song["settings"]}

    @staticmethod
    def describe(text: str, copies: CopyIndex | None) -> dict[str, Any]:
        """A line's `sample --json` form: its rhyme key and how much of it the corpus holds."""
        return line_of(text, copies).to_dict()
