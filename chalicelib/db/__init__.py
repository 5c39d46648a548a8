"""The one way to reach PostgreSQL: a lazily opened pg8000 connection per Lambda container.

The connection is reused across invocations and reopened once when it died (pg8000 raises
``InterfaceError`` or a bare ``OSError`` then). Reads retry once on a dead connection; writes are
never retried blindly. ``CALIB_DB_TIMEOUT_S`` bounds every socket operation; inside an API request
it is capped at the request's dependency budget (:mod:`chalicelib.deadline`), a statement is not
started when that budget no longer fits in the time left, and a database that does not answer in
time is not asked again: each is a 503 (``DatabaseUnavailable``) within the budget. All SQL lives
in this package: one module per area (``queries``, ``writes``, ...). Parameters use pg8000's
native ``:name`` style; numpy values are converted to plain Python before binding.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pg8000.native
from pg8000.exceptions import DatabaseError, InterfaceError

from chalicelib import deadline
from chalicelib.config import Settings, settings
from chalicelib.errors import DatabaseUnavailable
from chalicelib.plain import plain  # numpy values -> plain Python, so pg8000 can bind them

_lock = threading.RLock()
_conn: pg8000.native.Connection | None = None
_conn_key: tuple | None = None

_DEAD = (InterfaceError, OSError)


def _password(cfg: Settings) -> str | None:
    if cfg.db_password or not cfg.db_password_secret:
        return cfg.db_password
    from chalicelib import secrets  # prod only: Secrets Manager / SSM lookup

    return secrets.database_password(cfg.db_password_secret)


def _timeout_s(cfg: Settings) -> float:
    """The socket timeout of every database operation now (capped inside an API request)."""
    return deadline.capped_timeout_s(cfg.db_timeout_s)


def _key(cfg: Settings) -> tuple:
    return (cfg.db_host, cfg.db_port, cfg.db_name, cfg.db_user, cfg.db_unix_sock, cfg.db_ssl, cfg.db_ssl_root_cert, _timeout_s(cfg))


def _ssl_context(cfg: Settings) -> ssl.SSLContext | None:
    """With ``CALIB_DB_SSL`` on, TLS that must verify the server's certificate and host name; else None.

    None is pg8000's default: TLS when the server offers it, unverified, else plain text."""
    if not cfg.db_ssl:
        return None
    return ssl.create_default_context(cafile=cfg.db_ssl_root_cert)


def _timed_out(exc: BaseException) -> bool:
    """Whether a pg8000 failure was a socket timeout (it wraps it in InterfaceError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _no_answer(timeout: float | None = None) -> DatabaseUnavailable:
    """The 503 for a database that did not answer in time."""
    return DatabaseUnavailable(f"the database did not answer within {timeout or _timeout_s(settings()):g} s")


def _in_time() -> None:
    """Refuse to start a database operation that could outlast the request's deadline."""
    if deadline.current() is None:
        return
    timeout = _timeout_s(settings())
    if not deadline.allows(timeout):
        raise DatabaseUnavailable(
            f"no time left in the request's deadline for the database (it may take {timeout:g} s)")


def _open(cfg: Settings) -> pg8000.native.Connection:
    timeout = _timeout_s(cfg)
    _in_time()
    kwargs: dict[str, Any] = dict(user=cfg.db_user, database=cfg.db_name, timeout=timeout,
                                  password=_password(cfg), application_name="mwa-calib")
    context = _ssl_context(cfg)
    if context is not None:
        kwargs["ssl_context"] = context
    if cfg.db_unix_sock:
        kwargs["unix_sock"] = cfg.db_unix_sock
    else:
        kwargs.update(host=cfg.db_host, port=cfg.db_port)
    try:
        conn = pg8000.native.Connection(**kwargs)
        conn.run("SET TIME ZONE 'UTC'")
    except (DatabaseError, *_DEAD) as exc:
        if _timed_out(exc):
            raise _no_answer(timeout) from exc
        raise DatabaseUnavailable(f"cannot connect to the database: {type(exc).__name__}") from exc
    return conn


def connection() -> pg8000.native.Connection:
    """The container's connection, opened on first use (or when the settings changed)."""
    global _conn, _conn_key
    cfg = settings()
    with _lock:
        if _conn is None or _conn_key != _key(cfg):
            close()
            _conn = _open(cfg)
            _conn_key = _key(cfg)
        return _conn


def close() -> None:
    """Drop the container's connection (the next call opens a new one)."""
    global _conn, _conn_key
    with _lock:
        if _conn is not None:
            try:
                _conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail any way
                pass
        _conn = None
        _conn_key = None


def _params(params: dict[str, Any] | None) -> dict[str, Any]:
    return {k: plain(v) for k, v in (params or {}).items()}


def _rows(conn: pg8000.native.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    _in_time()
    rows = conn.run(sql, **params)
    if rows is None:
        return []
    names = [c["name"] for c in conn.columns or []]
    return [dict(zip(names, row)) for row in rows]


def query(sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run a read-only statement and return its rows as dicts; retried once on a dead connection."""
    p = _params(params)
    with _lock:
        try:
            return _rows(connection(), sql, p)
        except _DEAD as exc:
            close()
            if _timed_out(exc):  # a database that does not answer is not asked twice
                raise _no_answer() from exc
        try:
            return _rows(connection(), sql, p)
        except _DEAD as exc:
            close()
            raise DatabaseUnavailable("the database connection failed twice") from exc
        except DatabaseError:
            _rollback_quietly()
            raise


def execute(sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one writing statement in its own transaction (autocommit); never retried."""
    with _lock:
        conn = connection()
        try:
            return _rows(conn, sql, _params(params))
        except _DEAD as exc:
            close()
            if _timed_out(exc):
                raise _no_answer() from exc
            raise DatabaseUnavailable("the database connection dropped during a write") from exc
        except DatabaseError:
            _rollback_quietly()
            raise


class Transaction:
    """Statements run inside ``transaction()``; all commit together or none does."""

    def __init__(self, conn: pg8000.native.Connection) -> None:
        self._conn = conn

    def run(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return _rows(self._conn, sql, _params(params))

    def copy_in(self, sql: str, stream: Any) -> None:
        """Run a ``COPY ... FROM STDIN`` reading from a file-like stream (bulk loads)."""
        self._conn.run(sql, stream=stream)

    def run_many(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        """Run one statement for each parameter dict (inside the same transaction)."""
        for row in rows:
            self._conn.run(sql, **_params(row))


@contextmanager
def transaction() -> Iterator[Transaction]:
    """Run several statements atomically; rolls back on any error."""
    with _lock:
        conn = connection()
        try:
            conn.run("BEGIN")
        except _DEAD as exc:
            close()
            if _timed_out(exc):
                raise _no_answer() from exc
            conn = connection()
            conn.run("BEGIN")
        try:
            yield Transaction(conn)
        except BaseException as exc:
            if isinstance(exc, _DEAD):
                close()
            else:
                _rollback_quietly()
            raise
        try:
            conn.run("COMMIT")
        except _DEAD as exc:
            close()
            raise DatabaseUnavailable("the database connection dropped at commit") from exc


def _rollback_quietly() -> None:
    if _conn is None:
        return
    try:
        _conn.run("ROLLBACK")
    except Exception:  # noqa: BLE001
        close()
