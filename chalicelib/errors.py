"""One exception type per failure class, each with its HTTP status, mapped to a JSON answer here.

Routes raise these; ``app.py``'s middleware turns them (and anything unexpected) into a JSON body
that names the parameter and the problem, never a stack trace.
"""

from __future__ import annotations

from typing import Any

from chalice import ChaliceUnhandledError


class ServiceError(ChaliceUnhandledError):
    """A failure the caller is told about; ``status`` is the HTTP status code.

    Chalice lets ``ChaliceUnhandledError`` through to the middleware, which answers it.
    """

    status = 500
    error = "internal_error"

    def __init__(self, message: str, *, parameter: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        out: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.parameter:
            out["parameter"] = self.parameter
        out.update(self.details)
        return out


class BadRequest(ServiceError):
    """The request is malformed or names something that does not exist (400)."""

    status = 400
    error = "bad_request"


class Forbidden(ServiceError):
    """The caller may not do this (403): an admin route called without the telescope's authorisation."""

    status = 403
    error = "forbidden"


class NotFound(ServiceError):
    """The request is valid but nothing matches it (404)."""

    status = 404
    error = "not_found"


class Conflict(ServiceError):
    """The request could not be recorded (409)."""

    status = 409
    error = "conflict"


class DatabaseUnavailable(ServiceError):
    """The database cannot be reached or failed (503); the caller may retry."""

    status = 503
    error = "database_unavailable"


class StorageUnavailable(ServiceError):
    """S3 or SQS failed (503); the caller may retry."""

    status = 503
    error = "storage_unavailable"


class SecretUnavailable(ServiceError):
    """A secret the service needs could not be read (503); the caller may retry."""

    status = 503
    error = "secret_unavailable"


class MetadataUnavailable(ServiceError):
    """The observation's metafits could not be had: the metadata service is down, slow, or sent garbage (503)."""

    status = 503
    error = "metadata_unavailable"
