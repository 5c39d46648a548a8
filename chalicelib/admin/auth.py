"""Who may steer: the caller of an admin route, from API Gateway's request context.

In prod (``CALIB_ADMIN_AUTH=iam``, the default) API Gateway's IAM authorizer has already checked
the SigV4 signature and the resource policy; the principal's ARN it puts in the context is who we
record, and a call without one is refused. On the local stack (``local``, stage dev) only calls
from 127.0.0.1 are accepted, recorded as 'local'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.config import settings
from chalicelib.errors import Forbidden

LOCAL_ADDRESSES = ("127.0.0.1", "::1")


def caller(context: Mapping[str, Any] | None) -> str:
    """The caller's identity to record (an IAM principal ARN, or 'local'); 403 when not allowed."""
    identity = (context or {}).get("identity") or {}
    if settings().admin_auth == "local":
        if identity.get("sourceIp") not in LOCAL_ADDRESSES:
            raise Forbidden("the admin routes of the local stack accept calls from 127.0.0.1 only")
        return "local"
    arn = identity.get("userArn")
    if not arn:
        raise Forbidden("the admin routes need a SigV4-signed call from an allowed IAM principal")
    return str(arn)
