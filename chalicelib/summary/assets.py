"""The pages' two small files: the favicon (an MWA tile's 4 x 4 dipoles, SVG) and robots.txt.

Both are files in ``chalicelib/templates``, read once per container. Paths (app.py):

- ``/calib/favicon.svg``: what every page links to (``<link rel=icon href=favicon.svg>``,
  relative like all the pages' links, so it works under any stage prefix and on a shared host);
- ``/favicon.ico``: where a browser looks when a page names no icon (a JSON answer opened in a
  tab), on a host where the API serves the root;
- ``/robots.txt``: crawlers read it only at the root of a host. It keeps them out of ``/calib/``
  (on a host whose root belongs to another site, the same lines go in that site's robots.txt).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from chalice import Response

FILES = Path(__file__).resolve().parent.parent / "templates"
CACHE = "public, max-age=86400"


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (FILES / name).read_text(encoding="utf-8")


def favicon() -> Response:
    """The icon, SVG (every current browser shows an SVG favicon)."""
    return Response(body=_read("favicon.svg"), status_code=200,  # text: SVG is XML
                    headers={"Content-Type": "image/svg+xml", "Cache-Control": CACHE,
                             "X-Content-Type-Options": "nosniff"})


def robots() -> Response:
    """robots.txt: keep crawlers out of the on-demand plots and solutions."""
    return Response(body=_read("robots.txt"), status_code=200,
                    headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": CACHE})
