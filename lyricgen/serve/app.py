"""The routes: the page, the checkpoint's description, a song (whole or streamed as
server-sent events, line by line) and the candidates of one line. Drawing runs in FastAPI's
thread pool (plain `def` routes), so concurrent requests draw side by side."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from lyricgen import __version__
from lyricgen.config import SampleConfig
from lyricgen.serve.api import CandidatesBody, DescribeBody, FieldError, Problem, SongBody
from lyricgen.songs.songwriter import Line

REFUSED: dict[int | str, dict[str, Any]] = {422: {"model": Problem,
                                                  "description": "A field's value refused"}}
ASSETS = {"page.css": "text/css", "page.js": "text/javascript"}


class Engine(Protocol):
    """What the routes ask of the loaded checkpoint: commands/serve.py's Engine (the commands
    lie above this package, which does not import them)."""
    def info(self) -> dict[str, Any]: ...
    def prepare(self, body: SongBody) -> Any: ...  # a Job
    def write(self, job: Any, on_line: Callable[[Line], None] | None = None
              ) -> dict[str, Any]: ...
    def candidates(self, body: CandidatesBody) -> dict[str, Any]: ...
    def copies(self, cfg: SampleConfig) -> Any: ...
    @staticmethod
    def describe(text: str, copies: Any) -> dict[str, Any]: ...


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="lyricgen", version=__version__, description=(
        "Songs in a form from a lyricgen checkpoint: write one, redraw it around locked "
        "lines, see a line's other candidates. The page at / uses the same API."))

    @app.exception_handler(FieldError)
    def _refused(request: Request, e: FieldError) -> JSONResponse:
        return JSONResponse({"field": e.field, "message": e.message}, e.status)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        # pydantic's list of errors, as the first one in the API's one shape
        error = e.errors()[0]
        place = [str(p) for p in error["loc"] if p != "body"]
        field = place[0] if place and not place[0].isdigit() else "form"  # (bad JSON: a place)
        return JSONResponse({"field": field, "message": f"{field}: {error['msg']}"}, 422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return read_asset("page.html")

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            return Response(status_code=404)
        return Response(read_asset(name), media_type=ASSETS[name])

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """The checkpoint (corpus, size, validation perplexity), the presets and the bounds."""
        return engine.info()

    @app.post("/api/song", responses=REFUSED)
    def song(body: SongBody) -> dict[str, Any]:
        """A song in a form, as one result of `lyricgen sample --json` (with `seconds`);
        with `locked` lines, a redraw around them."""
        return engine.write(engine.prepare(body))

    @app.post("/api/song/stream", responses=REFUSED)
    def song_stream(body: SongBody) -> StreamingResponse:
        """The same, as server-sent events: `line` for each line as it is drawn (with its
        other candidates described), then `done` with the whole result, or `error`."""
        job = engine.prepare(body)  # a bad value is refused before the stream starts
        return StreamingResponse(stream(engine, job), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    @app.post("/api/candidates", responses=REFUSED)
    def candidates(body: CandidatesBody) -> dict[str, Any]:
        """The candidates of one line of `song`, best first: the line drawn again after the
        song above it, rhyming with the lines of its letter, every other line kept."""
        return engine.candidates(body)

    @app.post("/api/describe", responses=REFUSED)
    def describe(body: DescribeBody) -> list[dict[str, Any]]:
        """Lines as `sample --json` describes them (rhyme key, longest run the corpus holds),
        for lines written by hand."""
        copies = engine.copies(SampleConfig())
        return [engine.describe(text, copies) for text in body.lines]

    return app


def read_asset(name: str) -> str:
    return resources.files("lyricgen.serve").joinpath(name).read_text(encoding="utf-8")


class Gone(Exception):
    """The client left: the drawing stops at its next line."""


def stream(engine: Engine, job: Any) -> Iterator[str]:
    """Server-sent events of a song drawn in a thread of its own, a line as it comes."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    gone = threading.Event()
    index = job.used.count("\n")  # the prefix's whole lines are not drawn

    def on_line(line: Line) -> None:
        nonlocal index
        if gone.is_set():
            raise Gone
        events.put(("line", (index, line)))  # described below, off the drawing thread
        index += 1

    def draw() -> None:
        try:
            events.put(("done", engine.write(job, on_line)))
        except FieldError as e:
            events.put(("error", {"field": e.field, "message": e.message}))
        except Gone:
            pass
        except Exception as e:  # noqa: BLE001 - told to the page, not lost in a thread
            events.put(("error", {"field": "form", "message": f"{type(e).__name__}: {e}"}))
        finally:
            events.put(("end", None))

    threading.Thread(target=draw, daemon=True).start()
    try:
        while (event := events.get())[0] != "end":
            kind, data = event
            if kind == "line":
                at, line = data
                others = [engine.describe(text, job.writer.copies) for text in line.others]
                data = {"index": at, **line.to_dict(), "others": others}
            yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
    finally:
        gone.set()
