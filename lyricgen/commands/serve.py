"""`lyricgen serve`: the page of lyricgen/serve/ on a local address, until Ctrl-C. Its web
libraries are an optional extra, so they are imported only here and only when it runs."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path

from lyricgen.errors import LyricgenError

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
    from lyricgen.serve.engine import Engine

    engine = Engine(path, presets, warn=warn)
    engine.warm()
    sock = listen(host, port)  # bound here, so that a port in use is a one-line error
    address = sock.getsockname()
    shown = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    if not ipaddress.ip_address(address[0]).is_loopback:
        warn(f"--host {host}: the page is reachable from other machines, with no login; "
             "anyone who can reach this address can use it (--host 127.0.0.1 keeps it local)")
    info = engine.info()
    log(f"writing songs with {path} (corpus {info['corpus']}) at http://{shown}:{address[1]}/ "
        "(API at /docs); Ctrl-C stops it")
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning",
                                           timeout_graceful_shutdown=5))
    server.run(sockets=[sock])  # uvicorn handles Ctrl-C: it stops taking requests and ends
    log("stopped")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or a one-line error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        raise LyricgenError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock
