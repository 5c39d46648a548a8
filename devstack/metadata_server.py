"""A local stand-in for the MWA metadata web service: ``GET /metadata/fits?obs_id=N`` on 127.0.0.1.

It serves the metafits files it finds (``*_metafits.fits`` and ``*.metafits``) in the real MWA
fixtures (``../shared/fixtures/mwa/*/``) and in any directories it is given (the demo writes its
own there), each under its primary header's GPSTIME. A file added to a directory while the server
runs is found on the next request for its obsid. Answers: 200 with the file, 404 for an obsid it
has no metafits of, 400 for a malformed obs_id (the real service answers an error status too).

The local stack calls :func:`start` and puts :meth:`MetadataServer.env` into the app's
environment; tests do the same. ``python -m devstack.metadata_server [--port N] [--dir DIR ...]``
runs it alone until Ctrl-C.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PATH = "/metadata/fits"
PATTERNS = ("*_metafits.fits", "*.metafits")
_OBSID = re.compile(r"^[0-9]{1,12}$")


def default_dirs() -> list[Path]:
    """The real MWA fixture folders (``MWA_FIXTURES_DIR`` or ``../shared/fixtures/mwa/*/``)."""
    from devstack.demo import fixtures_dir

    root = fixtures_dir()
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def gpstime(path: Path) -> int | None:
    """The GPSTIME of a metafits file's primary header, or None when it has none (or is not FITS)."""
    from astropy.io import fits

    try:
        value = fits.getheader(path, 0).get("GPSTIME")
    except (OSError, ValueError):
        return None
    return int(value) if value is not None else None


@dataclass
class MetafitsIndex:
    """The metafits files of some directories by obsid, rescanned when an obsid is not found."""

    dirs: list[Path]
    _by_obsid: dict[int, Path] = field(default_factory=dict)
    _seen: dict[Path, float] = field(default_factory=dict)  # path -> mtime when read
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def scan(self) -> None:
        """Read the GPSTIME of every metafits file not read yet (or changed since)."""
        with self._lock:
            for folder in self.dirs:
                if not folder.is_dir():
                    continue
                for pattern in PATTERNS:
                    for path in sorted(folder.glob(pattern)):
                        mtime = path.stat().st_mtime
                        if self._seen.get(path) == mtime:
                            continue
                        self._seen[path] = mtime
                        obsid = gpstime(path)
                        if obsid is not None:
                            self._by_obsid[obsid] = path

    def find(self, obsid: int) -> Path | None:
        """The metafits file of the observation, or None."""
        path = self._by_obsid.get(obsid)
        if path is None or not path.exists():
            self.scan()
            path = self._by_obsid.get(obsid)
        return path if path is not None and path.exists() else None

    def obsids(self) -> list[int]:
        """Every obsid the directories hold a metafits of."""
        self.scan()
        return sorted(self._by_obsid)


@dataclass
class MetadataServer:
    """A running local metadata server: its address, what it was asked, and how to stop it."""

    host: str
    port: int
    index: MetafitsIndex
    requests: list[str] = field(default_factory=list)  # the request targets, in order
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The ``CALIB_METADATA_URL`` value for this server (the obsid is appended)."""
        return f"http://{self.host}:{self.port}{PATH}?obs_id="

    def env(self) -> dict[str, str]:
        """The settings that point the service at this server (and allow its loopback address)."""
        return {"CALIB_METADATA_URL": self.base_url, "CALIB_METADATA_ALLOW_HOSTS": self.host}

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def _handler(state: MetadataServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mwa-calib-local-metadata/1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.requests.append(self.path)
            parts = urlsplit(self.path)
            if parts.path.rstrip("/") != PATH:
                return self._text(404, "no such page")
            values = parse_qs(parts.query).get("obs_id", [])
            if len(values) != 1 or not _OBSID.match(values[0].strip()):
                return self._text(400, "obs_id must be one observation id (GPS seconds)")
            obsid = int(values[0])
            path = state.index.find(obsid)
            if path is None:
                return self._text(404, f"no metafits for observation {obsid}")
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/fits")
            self.send_header("Content-Disposition", f'attachment; filename="{obsid}_metafits.fits"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _text(self, status: int, message: str) -> None:
            body = (message + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # quiet: the stack's own log says what matters
            pass

    return Handler


def start(extra_dirs: Iterable[Path] = (), port: int = 0, host: str = "127.0.0.1",
          include_fixtures: bool = True) -> MetadataServer:
    """Serve the fixtures' metafits (and those in ``extra_dirs``) in a daemon thread; port 0 picks a free one."""
    dirs = [*(default_dirs() if include_fixtures else []), *(Path(d) for d in extra_dirs)]
    index = MetafitsIndex(dirs=dirs)
    index.scan()
    state = MetadataServer(host=host, port=0, index=index)
    server = ThreadingHTTPServer((host, port), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    state._server = server
    state._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                     name="metadata-server", daemon=True)
    state._thread.start()
    return state


def main(argv: list[str] | None = None) -> int:
    """The CLI: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m devstack.metadata_server", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=5200, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--dir", type=Path, action="append", default=[], help="another directory of metafits files")
    args = parser.parse_args(argv)
    server = start(extra_dirs=args.dir, port=args.port)
    obsids = server.index.obsids()
    listed = ", ".join(map(str, obsids))
    try:  # Ctrl-C at any moment from here stops the server cleanly, even while the lines are printed
        print(f"[metadata] serving {len(obsids)} metafits ({listed}) at {server.base_url}<obs_id>", flush=True)
        print(f"[metadata] point the service at it: CALIB_METADATA_URL={server.base_url} "
              f"CALIB_METADATA_ALLOW_HOSTS={server.host}   (Ctrl-C stops)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
