"""chalicelib.secrets: the prod database password from Secrets Manager or SSM, cached per container."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def sm():
    from moto import mock_aws

    from chalicelib import secrets

    with mock_aws():
        import boto3

        secrets.forget()
        yield {"secretsmanager": boto3.client("secretsmanager", region_name="ap-southeast-2"),
               "ssm": boto3.client("ssm", region_name="ap-southeast-2")}
        secrets.forget()


def test_secrets_manager_json_secret_gives_its_password_key(sm):
    from chalicelib import secrets

    sm["secretsmanager"].create_secret(Name="mwa-calib/db-password-rw",
                                       SecretString=json.dumps({"username": "calib_rw", "password": "s3cr3t"}))
    assert secrets.database_password("mwa-calib/db-password-rw") == "s3cr3t"


def test_secrets_manager_plain_string_and_arn(sm):
    from chalicelib import secrets

    arn = sm["secretsmanager"].create_secret(Name="plain", SecretString="just-the-password")["ARN"]
    assert arn.startswith("arn:aws:secretsmanager:")
    assert secrets.database_password(arn) == "just-the-password"
    assert secrets.database_password("plain") == "just-the-password"


def test_ssm_secure_string_by_leading_slash(sm):
    from chalicelib import secrets

    sm["ssm"].put_parameter(Name="/mwa-calib/db-password", Value="from-ssm", Type="SecureString")
    assert secrets.database_password("/mwa-calib/db-password") == "from-ssm"


def test_value_is_cached_per_container_until_forgotten(sm):
    from chalicelib import secrets
    from chalicelib.errors import DatabaseUnavailable

    sm["secretsmanager"].create_secret(Name="cached", SecretString="v1")
    assert secrets.database_password("cached") == "v1"
    sm["secretsmanager"].delete_secret(SecretId="cached", ForceDeleteWithoutRecovery=True)
    assert secrets.database_password("cached") == "v1"  # no second call to AWS
    secrets.forget()
    with pytest.raises(DatabaseUnavailable) as err:
        secrets.database_password("cached")
    assert err.value.status == 503 and "ResourceNotFound" in err.value.message


def test_missing_parameter_is_503_and_never_shows_a_value(sm):
    from chalicelib import secrets
    from chalicelib.errors import DatabaseUnavailable

    with pytest.raises(DatabaseUnavailable) as err:
        secrets.database_password("/mwa-calib/nope")
    assert "SSM" in err.value.message and "/mwa-calib/nope" in err.value.message


def test_db_connection_settings_use_the_secret(sm, monkeypatch):
    from chalicelib import db, secrets
    from chalicelib.config import settings

    sm["secretsmanager"].create_secret(Name="mwa-calib/db-password-ro", SecretString='{"password": "pw"}')
    monkeypatch.delenv("CALIB_DB_PASSWORD", raising=False)
    monkeypatch.setenv("CALIB_DB_PASSWORD_SECRET", "mwa-calib/db-password-ro")
    assert db._password(settings()) == "pw"
    monkeypatch.setenv("CALIB_DB_PASSWORD", "local-wins")
    assert db._password(settings()) == "local-wins"
    secrets.forget()


def test_resolve_reads_unresolved_cloudformation_dynamic_references(sm):
    from chalicelib import secrets
    from chalicelib.errors import SecretUnavailable

    sm["secretsmanager"].create_secret(Name="mwa-calib/callback-signing-secret", SecretString="k3y")
    sm["secretsmanager"].create_secret(Name="json-one", SecretString='{"key": "inner"}')
    sm["ssm"].put_parameter(Name="/mwa-calib/other", Value="ssm-value", Type="SecureString")
    assert secrets.resolve("{{resolve:secretsmanager:mwa-calib/callback-signing-secret}}") == "k3y"
    assert secrets.resolve("{{resolve:secretsmanager:json-one:SecretString:key}}") == "inner"
    assert secrets.resolve("{{resolve:ssm-secure:/mwa-calib/other}}") == "ssm-value"
    assert secrets.resolve("a-literal-secret") == "a-literal-secret"
    assert secrets.resolve(None) is None and secrets.resolve("") == ""
    with pytest.raises(SecretUnavailable) as err:
        secrets.resolve("{{resolve:secretsmanager:json-one:SecretString:missing}}")
    assert err.value.status == 503 and "inner" not in err.value.message  # the value is never shown


def test_a_rotated_secret_is_read_after_max_age_or_at_once_when_fresh(sm, monkeypatch):
    import time

    from chalicelib import secrets

    sm["secretsmanager"].create_secret(Name="rotating", SecretString='{"password": "old"}')
    assert secrets.database_password("rotating") == "old"
    sm["secretsmanager"].put_secret_value(SecretId="rotating", SecretString='{"password": "new"}')
    assert secrets.database_password("rotating") == "old"  # cached
    assert secrets.database_password("rotating", fresh=True) == "new"
    sm["secretsmanager"].put_secret_value(SecretId="rotating", SecretString='{"password": "newer"}')
    assert secrets.database_password("rotating") == "new"  # the fresh read was cached in turn

    monkeypatch.setattr(secrets, "MAX_AGE_S", 1)
    sm["ssm"].put_parameter(Name="/mwa-calib/rotating", Value="v1", Type="SecureString")
    assert secrets.secret_value("/mwa-calib/rotating") == "v1"
    sm["ssm"].put_parameter(Name="/mwa-calib/rotating", Value="v2", Type="SecureString", Overwrite=True)
    assert secrets.secret_value("/mwa-calib/rotating") == "v1"
    time.sleep(1.2)
    assert secrets.secret_value("/mwa-calib/rotating") == "v2"  # older than MAX_AGE_S: asked again


def test_a_binary_secret_is_read_as_utf8_text(sm):
    from chalicelib import secrets

    sm["secretsmanager"].create_secret(Name="binary", SecretBinary="bin-pässword".encode())
    assert secrets.database_password("binary") == "bin-pässword"
