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

Values are cached for ``MAX_AGE_S`` by aws-lambda-powertools' parameter providers (one per store,
on the clients of :mod:`chalicelib.aws`), so a rotated password reaches new connections within
minutes; ``fresh=True`` asks AWS at once (e.g. after the database refused a cached password) and
``forget()`` drops every cached value (tests, or after an authentication failure). A secret that
cannot be read raises :class:`~chalicelib.errors.DatabaseUnavailable` (the database password) or
:class:`~chalicelib.errors.SecretUnavailable` (any other), both 503: the caller may retry. The
value itself is never logged or put in an exception message.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from chalicelib import aws
from chalicelib.errors import DatabaseUnavailable, SecretUnavailable

MAX_AGE_S = 900  # seconds a value is reused before AWS is asked again

_SSM, _SECRETS_MANAGER = "ssm", "secretsmanager"
_lock = threading.Lock()
_providers: dict[str, Any] = {}

_DYNAMIC = re.compile(r"^\{\{resolve:(?P<service>secretsmanager|ssm-secure|ssm):(?P<rest>[^}]+)\}\}$")
_SSM_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:")


def forget() -> None:
    """Drop every cached value and the secret stores' clients (the next read asks AWS again)."""
    with _lock:
        for provider in _providers.values():
            provider.clear_cache()
        _providers.clear()
    aws.reset(_SSM, _SECRETS_MANAGER)


def _provider(store: str) -> Any:
    """The powertools provider of one store (SSM or Secrets Manager), on the factory's current client."""
    with _lock:
        client = aws.client(store)
        provider = _providers.get(store)
        if provider is None or provider.client is not client:  # new, or the factory was reset
            from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

            kind = SSMProvider if store == _SSM else SecretsProvider
            provider = _providers[store] = kind(boto3_client=client)
        return provider


def _is_ssm(secret_id: str) -> bool:
    return secret_id.startswith("/") or bool(_SSM_ARN.match(secret_id))


def _fetch(secret_id: str, ssm: bool, fresh: bool) -> str:
    """The secret's raw value (cached for MAX_AGE_S); an AWS failure is raised as botocore raised it."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        if ssm:
            value = _provider(_SSM).get(secret_id, max_age=MAX_AGE_S, decrypt=True, force_fetch=fresh)
        else:
            value = _provider(_SECRETS_MANAGER).get(secret_id, max_age=MAX_AGE_S, force_fetch=fresh)
    except GetParameterError as exc:  # powertools wraps every failure; the AWS error is its context
        if isinstance(exc.__context__, aws.aws_errors()):
            raise exc.__context__ from None
        raise
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)  # SecretBinary: bytes


def _json_key(raw: str, key: str | None) -> str:
    """The value under ``key`` when ``raw`` is a JSON object holding it; else ``raw`` (or KeyError)."""
    if key is None:
        return raw
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get(key) is not None:
        return str(doc[key])
    raise KeyError(key)


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return code or type(exc).__name__


def secret_value(secret_id: str, json_key: str | None = None, *, ssm: bool | None = None,
                 fresh: bool = False) -> str:
    """A secret's value from SSM (``/name`` or an SSM ARN) or Secrets Manager (anything else).

    ``ssm`` forces the store (None: decided from the id as above). With ``json_key`` the secret
    must be a JSON object holding that key. ``fresh`` skips the cache. Raises SecretUnavailable (503).
    """
    if not secret_id:
        raise SecretUnavailable("no secret id configured")
    if ssm is None:
        ssm = _is_ssm(secret_id)
    try:
        return _json_key(_fetch(secret_id, ssm, fresh), json_key)
    except KeyError:
        raise SecretUnavailable(f"secret {secret_id} has no key {json_key!r}") from None
    except aws.aws_errors() as exc:
        raise SecretUnavailable(f"cannot read secret {secret_id}: {_describe(exc)}") from exc


def database_password(secret_id: str, *, fresh: bool = False) -> str:
    """The database password held by ``secret_id`` (see the module docstring); 503 when unreadable."""
    if not secret_id:
        raise DatabaseUnavailable("no database password secret configured")
    ssm = _is_ssm(secret_id)
    try:
        raw = _fetch(secret_id, ssm, fresh)
    except aws.aws_errors() as exc:
        raise DatabaseUnavailable(
            f"cannot read the database password from {'SSM' if ssm else 'Secrets Manager'} "
            f"({secret_id}): {_describe(exc)}") from exc
    if ssm:
        return raw
    try:
        return _json_key(raw, "password")
    except KeyError:
        return raw  # not a JSON object with a 'password': take it as the password itself


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
