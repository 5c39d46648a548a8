"""Test set-up: a real PostgreSQL (embedded, or the server CALIB_TEST_DB_* names) and moto for AWS.

The database is created fresh for each test session, migrated, and emptied between tests. AWS is
moto's in-process mock with the service's buckets and queues created in it.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import pytest

# Fixtures shared across modules: the callback receiver and request seeds, the real 1369821496 fit.
pytest_plugins = ["tests.requests_support", "tests.real_fit", "tests.metadata_support"]

# Settings the app reads at import or call time, fixed before anything imports it.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mwa-calib-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MWACalibTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "mwa-calib-mpl"))
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "ap-southeast-2"
os.environ["AWS_REGION"] = "ap-southeast-2"
os.environ.pop("AWS_ENDPOINT_URL", None)
# The longest request deadline API Gateway allows (the default is 20 s): CPU-heavy routes (a first plot
# render) stay inside it on a busy shared machine; tests/test_deadlines.py sets its own and the default.
os.environ.setdefault("CALIB_REQUEST_DEADLINE_S", "28")
os.environ["CALIB_CAL_BUCKET"] = "test-cal"
os.environ["CALIB_PRODUCTS_BUCKET"] = "test-products"
os.environ["CALIB_METADATA_URL"] = ""  # no test reaches the real metadata service; tests that fetch start a local one
os.environ["CALIB_PLOTS_AT_LANDING"] = "0"  # landings draw no plots except where a test asks (test_plots_landing)

TABLES = (
    "calibration_request_callback_attempt", "calibration_request", "calibration_fit_file",
    "calibration_solutions", "calibration_fits", "observation_tile", "rf_stream",
    "schedule_metadata", "mwa_setting", "calibration_model_error",
    "calibration_fit_retirement", "calibration_fit_preference", "validity_epoch", "operator_audit",
)


def _embedded_server(tmp_root: Path) -> str:
    """Start pgserver in a fresh directory and return its unix socket path."""
    warnings.filterwarnings("ignore", category=Warning, module="platformdirs")
    import pgserver

    srv = pgserver.get_server(tmp_root / "pgdata", cleanup_mode="stop")
    host = srv.get_uri().split("host=", 1)[1].split("&", 1)[0]
    return str(Path(host) / ".s.PGSQL.5432")


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated, empty database for this session; its settings are in os.environ."""
    import pg8000.native

    if os.environ.get("CALIB_TEST_DB_HOST") or os.environ.get("CALIB_TEST_DB_UNIX_SOCK"):
        admin = {
            "user": os.environ.get("CALIB_TEST_DB_USER", "postgres"),
            "password": os.environ.get("CALIB_TEST_DB_PASSWORD"),
        }
        if os.environ.get("CALIB_TEST_DB_UNIX_SOCK"):
            admin["unix_sock"] = os.environ["CALIB_TEST_DB_UNIX_SOCK"]
        else:
            admin["host"] = os.environ["CALIB_TEST_DB_HOST"]
            admin["port"] = int(os.environ.get("CALIB_TEST_DB_PORT", "5432"))
    else:
        admin = {"user": "postgres", "unix_sock": _embedded_server(tmp_path_factory.mktemp("pg"))}

    name = f"calib_test_{os.getpid()}"
    conn = pg8000.native.Connection(database="postgres", **admin)
    conn.run(f"DROP DATABASE IF EXISTS {name}")
    conn.run(f"CREATE DATABASE {name}")
    conn.close()

    env = {"CALIB_DB_NAME": name, "CALIB_DB_USER": admin["user"]}
    if "unix_sock" in admin:
        env["CALIB_DB_UNIX_SOCK"] = admin["unix_sock"]
    else:
        env["CALIB_DB_HOST"] = admin["host"]
        env["CALIB_DB_PORT"] = str(admin["port"])
    if admin.get("password"):
        env["CALIB_DB_PASSWORD"] = admin["password"]
    os.environ.update(env)

    from chalicelib import db, migrate

    migrate.apply()
    yield env
    db.close()


@pytest.fixture
def clean_db(database: dict[str, str]) -> dict[str, str]:
    """The session database, emptied of every row before the test."""
    from chalicelib import db

    db.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    return database


@pytest.fixture
def aws():
    """moto's in-process AWS with the service's buckets and request queues created."""
    from moto import mock_aws

    with mock_aws():
        import boto3

        from chalicelib import storage

        storage.reset_clients()
        s3 = boto3.client("s3", region_name="ap-southeast-2")
        for bucket in ("test-cal", "test-products"):
            s3.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
        sqs = boto3.client("sqs", region_name="ap-southeast-2")
        dlq = sqs.create_queue(QueueName="calib-requests-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue = sqs.create_queue(
            QueueName="calib-requests",
            Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "5"}}'},
        )["QueueUrl"]
        os.environ["CALIB_REQUEST_QUEUE_URL"] = queue
        yield {"s3": s3, "sqs": sqs, "queue_url": queue, "dlq_url": dlq}
        storage.reset_clients()


@pytest.fixture(scope="module")
def demo_data(database: dict[str, str]):
    """The local stack's demo (8 days), seeded once for the module using it (other modules' clean_db empty it)."""
    from chalicelib import db
    from devstack import demo

    db.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    data = demo.generate(days=8)
    demo.seed_database(data)
    return data


@pytest.fixture
def demo_client(demo_data, aws):
    """A Chalice test client over the demo data."""
    from chalice.test import Client

    from app import app

    with Client(app) as c:
        yield c
