"""A WSGI adapter around the Chalice app, through chalice's own local API Gateway (as ``chalice local``).

Lets WSGI clients (schemathesis, werkzeug's test client) call the app in-process: same event
conversion, same API Gateway answers (403 for an unknown route) as the local stack serves.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote


def wsgi_app(app: Any) -> Callable[[dict, Callable], Iterable[bytes]]:
    """A WSGI callable answering every request with the Chalice ``app``."""
    from chalice.config import Config
    from chalice.local import LocalGateway, LocalGatewayException

    gateway = LocalGateway(app, Config())

    def call(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = quote(environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace"), safe="/%")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        encoded = False
        try:
            answer = gateway.handle_request(environ["REQUEST_METHOD"], path, headers, body)
            status, out_headers, out = answer["statusCode"], dict(answer.get("headers") or {}), answer.get("body")
            for name, values in (answer.get("multiValueHeaders") or {}).items():
                out_headers[name] = ", ".join(values)
            encoded = bool(answer.get("isBase64Encoded"))
        except LocalGatewayException as exc:
            status, out_headers, out = exc.CODE, dict(exc.headers or {}), exc.body
        data = out if isinstance(out, bytes) else (out or "").encode("utf-8")
        if encoded:
            data = base64.b64decode(data)
        start_response(f"{status} {HTTPStatus(status).phrase}", [(k, str(v)) for k, v in out_headers.items()])
        return [data]

    return call
