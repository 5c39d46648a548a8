"""Every setting of the service, read from environment variables with documented defaults.

This is the only module that reads ``os.environ``; everything else asks ``settings()``. The README
("Configuration") lists each variable. Values are read at call time, so a Chalice stage's
environment (which reaches ``os.environ`` only while a request runs) is always honoured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_METADATA_URL = "https://ws.mwatelescope.org/metadata/fits?obs_id="
from chalicelib.deadline import API_GATEWAY_LIMIT_S, MIN_DEADLINE_S


@dataclass(frozen=True)
class Settings:
    """A snapshot of the configuration."""

    db_host: str
    db_port: int
    db_name: str
    db_user: str
    db_password: str | None
    db_password_secret: str | None  # Secrets Manager id / SSM parameter name holding the password
    db_unix_sock: str | None
    db_timeout_s: float
    cal_bucket: str
    products_bucket: str
    request_queue_url: str
    presign_expiry_s: int
    obs_page_base_url: str
    callback_allow_hosts: tuple[str, ...]
    callback_signing_secret: str | None
    callback_connect_timeout_s: float
    callback_total_timeout_s: float
    callback_retry_hours: float
    aws_region: str
    aws_endpoint_url: str | None
    metadata_prefix: str
    legacy_add_request: bool  # get_calfile_for_obsid?add_request=1 may queue a fit (no API key asked)
    # callback retry schedule: first delay, doubling up to the cap (tests shorten them)
    callback_retry_base_s: float = 30.0
    callback_retry_max_s: float = 3600.0
    db_ssl: bool = False  # TLS required, the server's certificate and host name verified (prod: RDS Proxy)
    db_ssl_root_cert: str | None = None  # CA bundle to verify it with; None: the system's trust store
    # the observation metadata source (chalicelib.metadata): the MWA metadata web service
    metadata_url: str = DEFAULT_METADATA_URL  # the obsid is appended; empty: never fetch
    metadata_allow_hosts: tuple[str, ...] = ()  # hosts fetched from even on loopback/private addresses
    metadata_connect_timeout_s: float = 3.0
    metadata_total_timeout_s: float = 8.0
    metadata_max_bytes: int = 16 * 1024 * 1024
    # every API request is answered within this (API Gateway's limit is 29 s); see chalicelib.deadline
    request_deadline_s: float = 20.0
    model_error_threshold_rad: float = 0.3  # the fit page marks tiles whose line-model error is above it
    plots_at_landing: bool = True  # the S3-event function draws a landed fit's plots (chalicelib.plots.prerender)
    # the admin routes (README "Operating the selection"): how callers are authorised, and their database role
    admin_auth: str = "iam"  # iam: API Gateway's IAM authorizer signed the call (prod); local: 127.0.0.1 only
    admin_db_user: str | None = None  # the admin role (calib_admin); None: the connection's own user
    admin_db_password_secret: str | None = None  # its secret (Secrets Manager / SSM)
    admin_url: str = "https://ws.mwatelescope.org"  # the service the admin CLI calls (CALIB_ADMIN_URL)


def _get(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _flag(name: str, default: bool) -> bool:
    value = (_get(name) or "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1/0 (or true/false, on/off), got {value!r}")


def _hosts(name: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in (_get(name, "") or "").split(",") if h.strip())


def _deadline(name: str, default: str) -> float:
    value = float(_get(name, default))
    if not MIN_DEADLINE_S <= value < API_GATEWAY_LIMIT_S:  # past 29 s API Gateway answers 504 itself
        raise ValueError(f"{name} must be at least {MIN_DEADLINE_S:g} s and less than {API_GATEWAY_LIMIT_S:g} s "
                         f"(API Gateway's limit), got {value:g}")
    return value


def settings() -> Settings:
    """Read the configuration now."""
    return Settings(
        db_host=_get("CALIB_DB_HOST", "127.0.0.1"),
        db_port=int(_get("CALIB_DB_PORT", "5432")),
        db_name=_get("CALIB_DB_NAME", "mwa"),
        db_user=_get("CALIB_DB_USER", "postgres"),
        db_password=_get("CALIB_DB_PASSWORD"),
        db_password_secret=_get("CALIB_DB_PASSWORD_SECRET"),
        db_unix_sock=_get("CALIB_DB_UNIX_SOCK"),
        db_timeout_s=float(_get("CALIB_DB_TIMEOUT_S", "10")),
        cal_bucket=_get("CALIB_CAL_BUCKET", "mwa-calib-solutions"),
        products_bucket=_get("CALIB_PRODUCTS_BUCKET", "mwa-calib-products"),
        request_queue_url=_get("CALIB_REQUEST_QUEUE_URL", ""),
        presign_expiry_s=int(_get("CALIB_PRESIGN_EXPIRY_S", "3600")),
        obs_page_base_url=_get("CALIB_OBS_PAGE_BASE_URL", "https://ws.mwatelescope.org/observation/obs/?obs_id="),
        callback_allow_hosts=tuple(
            h.strip().lower() for h in (_get("CALIB_CALLBACK_ALLOW_HOSTS", "") or "").split(",") if h.strip()
        ),
        callback_signing_secret=_get("CALIB_CALLBACK_SIGNING_SECRET"),
        callback_connect_timeout_s=float(_get("CALIB_CALLBACK_CONNECT_TIMEOUT_S", "5")),
        callback_total_timeout_s=float(_get("CALIB_CALLBACK_TOTAL_TIMEOUT_S", "15")),
        callback_retry_hours=float(_get("CALIB_CALLBACK_RETRY_HOURS", "24")),
        aws_region=_get("AWS_REGION", _get("AWS_DEFAULT_REGION", "ap-southeast-2")),
        aws_endpoint_url=_get("AWS_ENDPOINT_URL"),
        metadata_prefix=_get("CALIB_METADATA_PREFIX", "metadata/"),
        legacy_add_request=_flag("CALIB_LEGACY_ADD_REQUEST", True),
        callback_retry_base_s=float(_get("CALIB_CALLBACK_RETRY_BASE_S", "30")),
        callback_retry_max_s=float(_get("CALIB_CALLBACK_RETRY_MAX_S", "3600")),
        db_ssl=_flag("CALIB_DB_SSL", False),
        db_ssl_root_cert=_get("CALIB_DB_SSL_ROOT_CERT"),
        # set but empty disables the fetch, so this one is read without _get's empty-means-default
        metadata_url=os.environ.get("CALIB_METADATA_URL", DEFAULT_METADATA_URL).strip(),
        metadata_allow_hosts=_hosts("CALIB_METADATA_ALLOW_HOSTS"),
        metadata_connect_timeout_s=float(_get("CALIB_METADATA_CONNECT_TIMEOUT_S", "3")),
        metadata_total_timeout_s=float(_get("CALIB_METADATA_TOTAL_TIMEOUT_S", "8")),
        metadata_max_bytes=int(_get("CALIB_METADATA_MAX_BYTES", str(16 * 1024 * 1024))),
        request_deadline_s=_deadline("CALIB_REQUEST_DEADLINE_S", "20"),
        model_error_threshold_rad=float(_get("CALIB_MODEL_ERROR_THRESHOLD_RAD", "0.3")),
        plots_at_landing=_flag("CALIB_PLOTS_AT_LANDING", True),
        admin_auth=_choice("CALIB_ADMIN_AUTH", ("iam", "local"), "iam"),
        admin_db_user=_get("CALIB_ADMIN_DB_USER"),
        admin_db_password_secret=_get("CALIB_ADMIN_DB_PASSWORD_SECRET"),
        admin_url=_get("CALIB_ADMIN_URL", "https://ws.mwatelescope.org"),
    )


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = (_get(name) or default).strip().lower()
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value
