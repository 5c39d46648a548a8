"""Secrets read at run time (prod): AWS Secrets Manager or SSM Parameter Store, cached per container.

Nothing secret is in the repository or in ``.chalice/config.json``: the stage names *where* the
secret is, and this module fetches it on first use.

``database_password(secret_id)`` (``CALIB_DB_PASSWORD_SECRET``):

* ``/mwa-calib/db-password`` (a leading ``/``) or ``arn:aws:ssm:...``: SSM ``GetParameter`` with
  decryption (a ``SecureString``);
* anything else (``mwa-calib/db-password``, ``arn:aws:secretsmanager:...``): Secrets Manager
  ``GetSecretValue``. A JSON object's ``password`` key is used (the shape RDS-managed and
  rotation-lambda secrets have), else the whole string.

``resolve(value)`` turns a CloudFormation dynamic reference that was not resolved at deploy time
(``{{resolve:secretsmanager:ID:SecretString:KEY}}``, ``{{resolve:ssm-secure:NAME}}``,
``{{resolve:ssm:NAME}}``) into the secret; any other value is returned unchanged. A stage may put
such a reference in an environment variable: CloudFormation (``chalice package`` + SAM) replaces
it at deploy time, and where nothing did (``chalice deploy``, Terraform) the code that reads the
setting calls ``resolve`` and gets the same value.

Values are cached for ``MAX_AGE_S`` so a rotated password reaches new connections within minutes;
``forget()`` drops the cache (tests, or after an authentication failure). A secret that cannot be
read raises :class:`~chalicelib.errors.DatabaseUnavailable` (503): the caller may retry. The
value itself is never logged or put in an exception message.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from chalicelib.config import settings
from chalicelib.errors import DatabaseUnavailable, ServiceError

MAX_AGE_S = 900.0

_lock = threading.Lock()
_cache: dict[tuple[str, str, str | None], tuple[float, str]] = {}
_clients: dict[str, Any] = {}

_DYNAMIC = re.compile(r"^\{\{resolve:(?P<service>secretsmanager|ssm-secure|ssm):(?P<rest>[^}]+)\}\}$")


class SecretUnavailable(ServiceError):
    """A secret the service needs could not be read (503)."""

    status = 503
    error = "secret_unavailable"


def forget() -> None:
    """Drop every cached value and client (the next read asks AWS again)."""
    with _lock:
        _cache.clear()
        _clients.clear()


def _client(service: str) -> Any:
    with _lock:
        if service not in _clients:
            import boto3
            from botocore.config import Config

            _clients[service] = boto3.client(
                service, region_name=settings().aws_region,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10))
        return _clients[service]


_SSM_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:")


def _is_ssm(secret_id: str) -> bool:
    return secret_id.startswith("/") or bool(_SSM_ARN.match(secret_id))


def _fetch_ssm(name: str) -> str:
    return _client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


def _fetch_secretsmanager(secret_id: str) -> str:
    answer = _client("secretsmanager").get_secret_value(SecretId=secret_id)
    if answer.get("SecretString") is not None:
        return answer["SecretString"]
    return bytes(answer["SecretBinary"]).decode("utf-8")


def _json_key(raw: str, key: str | None) -> str:
    """The value under ``key`` when ``raw`` is a JSON object holding it; else ``raw`` (or KeyError)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        if key is None:
            return raw
        if key in doc and doc[key] is not None:
            return str(doc[key])
        raise KeyError(key)
    if key is None:
        return raw
    raise KeyError(key)


def _cached(kind: str, secret_id: str, key: str | None, fetch) -> str:
    now = time.monotonic()
    cache_key = (kind, secret_id, key)
    with _lock:
        hit = _cache.get(cache_key)
        if hit is not None and now - hit[0] < MAX_AGE_S:
            return hit[1]
    value = fetch()
    with _lock:
        _cache[cache_key] = (now, value)
    return value


def _errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return code or type(exc).__name__


def secret_value(secret_id: str, json_key: str | None = None, *, ssm: bool | None = None) -> str:
    """A secret's value from SSM (``/name`` or an SSM ARN) or Secrets Manager (anything else).

    ``ssm`` forces the store (None: decided from the id as above). With ``json_key`` the secret
    must be a JSON object holding that key. Raises SecretUnavailable (503).
    """
    if not secret_id:
        raise SecretUnavailable("no secret id configured")
    if ssm is None:
        ssm = _is_ssm(secret_id)

    def fetch() -> str:
        raw = _fetch_ssm(secret_id) if ssm else _fetch_secretsmanager(secret_id)
        return _json_key(raw, json_key)

    try:
        return _cached("ssm" if ssm else "secretsmanager", secret_id, json_key, fetch)
    except KeyError:
        raise SecretUnavailable(f"secret {secret_id} has no key {json_key!r}") from None
    except _errors() as exc:
        raise SecretUnavailable(f"cannot read secret {secret_id}: {_describe(exc)}") from exc


def database_password(secret_id: str) -> str:
    """The database password held by ``secret_id`` (see the module docstring); 503 when unreadable."""
    if not secret_id:
        raise DatabaseUnavailable("no database password secret configured")
    ssm = _is_ssm(secret_id)

    def fetch() -> str:
        if ssm:
            return _fetch_ssm(secret_id)
        raw = _fetch_secretsmanager(secret_id)
        try:
            return _json_key(raw, "password")
        except KeyError:
            return raw  # a JSON document without 'password': take it as the password itself

    try:
        return _cached("db-password", secret_id, None, fetch)
    except _errors() as exc:
        raise DatabaseUnavailable(
            f"cannot read the database password from {'SSM' if ssm else 'Secrets Manager'} "
            f"({secret_id}): {_describe(exc)}") from exc


def resolve(value: str | None) -> str | None:
    """``value``, or the secret it names when it is an unresolved CloudFormation dynamic reference."""
    if not value:
        return value
    m = _DYNAMIC.match(value.strip())
    if m is None:
        return value
    parts = m.group("rest").split(":")
    if m.group("service") == "secretsmanager":
        # secret-id[:SecretString[:json-key[:version-stage[:version-id]]]]; a secret ARN has colons itself
        if parts[0] == "arn" and len(parts) >= 7:
            secret_id, tail = ":".join(parts[:7]), parts[7:]
        else:
            secret_id, tail = parts[0], parts[1:]
        key = tail[1] if len(tail) >= 2 and tail[1] else None
        return secret_value(secret_id, key)
    rest = m.group("rest")
    name = rest.rsplit(":", 1)[0] if re.search(r":\d+$", rest) else rest  # ssm:NAME:VERSION
    return secret_value(name, ssm=True)
