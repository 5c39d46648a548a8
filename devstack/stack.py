"""The local stack: embedded PostgreSQL, moto's S3 and SQS on loopback, an event pump, chalice local.

``python -m devstack serve`` (what ``bin/serve`` runs) starts all of it; Ctrl-C stops every
process it started. Data lives under ``.local/`` in the project, so a second run reuses it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
LOCAL = PROJECT / ".local"

REQUEST_QUEUE = "mwa-calib-requests"
REQUEST_DLQ = "mwa-calib-requests-dlq"
CAL_EVENTS_QUEUE = "mwa-calib-cal-events"
CAL_EVENTS_DLQ = "mwa-calib-cal-events-dlq"
MAX_RECEIVES = 5
METADATA_PORT = 5200  # the local metadata service (devstack.metadata_server), or any free port
# What EventBridge sends a scheduled function; Chalice reads these keys.
SCHEDULED_EVENT = {"version": "0", "id": "local", "detail-type": "Scheduled Event", "source": "aws.events",
                   "account": "123456789012", "time": "1970-01-01T00:00:00Z", "region": "ap-southeast-2",
                   "resources": [], "detail": {}}


@dataclass
class LocalStack:
    """What a running local stack is made of, and the environment that points the app at it."""

    db_sock: str
    aws_endpoint: str
    env: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)


def stop_process(proc: subprocess.Popen, timeout_s: float = 10) -> None:
    """Terminate a child process, and kill it when it has not exited within ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port(preferred: int) -> int:
    """The preferred loopback port if free, else any free one."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port on 127.0.0.1")


def start_database(datadir: Path, dbname: str = "mwa") -> str:
    """Start (or reuse) the embedded PostgreSQL in ``datadir``; returns its unix socket path."""
    warnings.filterwarnings("ignore", module="platformdirs")
    import pg8000.native
    import pgserver

    datadir.mkdir(parents=True, exist_ok=True)
    srv = pgserver.get_server(datadir, cleanup_mode="stop")
    host = srv.get_uri().split("host=", 1)[1].split("&", 1)[0]
    sock = str(Path(host) / ".s.PGSQL.5432")
    conn = pg8000.native.Connection(user="postgres", unix_sock=sock, database="postgres")
    if not conn.run("SELECT 1 FROM pg_database WHERE datname = :n", n=dbname):
        conn.run(f'CREATE DATABASE "{dbname}"')
    conn.close()
    start_database.server = srv  # keep a reference: the server stops when it is collected
    return sock


def start_aws(port: int):
    """Start moto's server on 127.0.0.1 (its default would be every interface)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per S3/SQS call otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


def aws_env(endpoint: str) -> dict[str, str]:
    """Credentials and endpoint that point boto3 at the local moto server."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "ap-southeast-2",
        "AWS_REGION": "ap-southeast-2",
    }


def create_resources(env: dict[str, str]) -> dict[str, str]:
    """Buckets, queues with dead-letter queues, and the calibration bucket's notifications."""
    import boto3

    kw = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
              aws_access_key_id="local", aws_secret_access_key="local")
    s3 = boto3.client("s3", **kw)
    sqs = boto3.client("sqs", **kw)
    for bucket in (env["CALIB_CAL_BUCKET"], env["CALIB_PRODUCTS_BUCKET"]):
        try:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": env["AWS_REGION"]})
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    queues: dict[str, str] = {}
    for name, dlq in ((REQUEST_QUEUE, REQUEST_DLQ), (CAL_EVENTS_QUEUE, CAL_EVENTS_DLQ)):
        dlq_url = sqs.create_queue(QueueName=dlq)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(QueueName=name, Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
        })["QueueUrl"]
        queues[name], queues[dlq] = url, dlq_url
    events_arn = sqs.get_queue_attributes(QueueUrl=queues[CAL_EVENTS_QUEUE],
                                          AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=env["CALIB_CAL_BUCKET"],
        NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": events_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return queues


class EventPump(threading.Thread):
    """Feeds queued SQS messages and S3 notifications to the handlers Lambda would call.

    A message is deleted only when its handler returned; otherwise it becomes visible again and,
    after ``MAX_RECEIVES`` tries, moves to its dead-letter queue, as on AWS.
    """

    def __init__(self, env: dict[str, str], queues: dict[str, str], interval_s: float = 1.0) -> None:
        super().__init__(name="event-pump", daemon=True)
        self.env, self.queues, self.interval_s = env, queues, interval_s
        self.stop_event = threading.Event()
        self.handled = 0

    def run(self) -> None:
        import boto3

        from app import app

        sqs = boto3.client("sqs", endpoint_url=self.env["AWS_ENDPOINT_URL"], region_name=self.env["AWS_REGION"])
        while not self.stop_event.is_set():
            try:
                self._drain(sqs, app, REQUEST_QUEUE, "store_request", self._as_sqs_event)
                self._drain(sqs, app, CAL_EVENTS_QUEUE, "on_cal_file", self._as_s3_event)
                if "retry_callbacks" in app.handler_map:
                    app.handler_map["retry_callbacks"](SCHEDULED_EVENT, _LocalContext("retry_callbacks"))
            except Exception as exc:  # noqa: BLE001 - the pump must keep running
                print(f"[pump] {type(exc).__name__}: {exc}", file=sys.stderr)
            self.stop_event.wait(self.interval_s)

    def _drain(self, sqs, app, queue: str, handler: str, to_event) -> None:
        url = self.queues[queue]
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                   AttributeNames=["All"]).get("Messages", [])
        for msg in msgs:
            event = to_event(msg, url)
            try:
                if event is not None:
                    app.handler_map[handler](event, _LocalContext(handler))
            except Exception as exc:  # noqa: BLE001 - left on the queue for a retry
                print(f"[pump] {handler} failed, message stays queued: {type(exc).__name__}: {exc}",
                      file=sys.stderr)
                continue
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
            self.handled += 1

    @staticmethod
    def _as_sqs_event(msg: dict, url: str) -> dict:
        return {"Records": [{
            "messageId": msg["MessageId"], "receiptHandle": msg["ReceiptHandle"], "body": msg["Body"],
            "attributes": msg.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": msg.get("MD5OfBody", ""),
            "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:ap-southeast-2:123456789012:{url.rsplit('/', 1)[1]}",
            "awsRegion": "ap-southeast-2",
        }]}

    @staticmethod
    def _as_s3_event(msg: dict, url: str) -> dict | None:
        body = json.loads(msg["Body"])
        records = [r for r in body.get("Records", []) if r.get("eventSource") == "aws:s3"]
        return {"Records": records} if records else None  # the first message is s3:TestEvent


class _LocalContext:
    """The few Lambda context attributes handlers and powertools read."""

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:ap-southeast-2:123456789012:function:{name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = f"local-{time.time_ns()}"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


REAL_FIT_CAL = 1369821496  # a real hyperdrive fit (24 coarse channels, 144 tiles) in the fixtures
REAL_FIT_ID = 1685790000000000  # Unix microseconds, an hour after that observation


def land_real_fit(env: dict[str, str]) -> None:
    """Put the real hyperdrive fit of 1369821496 into the local calibration bucket.

    Its files are uploaded at every start (local S3 lives in memory); the manifest only while the
    database lacks the fit, so the event pump ingests it once through the same S3 path as AWS.
    """
    import boto3

    from chalicelib.db import ingest as ingest_queries
    from chalicelib.ingest import layout
    from devstack import demo

    folder = demo.fixtures_dir() / str(REAL_FIT_CAL)
    solutions = sorted(p.name for p in folder.glob("hyp_soln_*_solutions.fits"))
    metafits = f"{REAL_FIT_CAL}_metafits.fits"
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"])
    prefix = layout.fit_prefix(REAL_FIT_CAL, REAL_FIT_ID)
    for name in [*solutions, metafits]:
        s3.put_object(Bucket=env["CALIB_CAL_BUCKET"], Key=prefix + name, Body=(folder / name).read_bytes())
    if ingest_queries.recorded_fit(REAL_FIT_ID, REAL_FIT_CAL) is None:
        manifest = {"solutions": solutions, "metafits": metafits, "creator": "calvin",
                    "finished_datetime": "2023-06-03T10:00:00Z"}
        s3.put_object(Bucket=env["CALIB_CAL_BUCKET"], Key=layout.manifest_key(REAL_FIT_CAL, REAL_FIT_ID),
                      Body=json.dumps(manifest).encode())
        print(f"[stack] the real fit of {REAL_FIT_CAL} landed in the calibration bucket; the pump ingests it")


def prepare(aws_port: int = 5100, dbname: str = "mwa", seed_demo: bool = True,
            data_dir: Path | None = None) -> tuple[LocalStack, object]:
    """Start the database and AWS, create resources, migrate and seed; returns the stack and moto."""
    t0 = time.perf_counter()
    data_dir = data_dir or LOCAL
    sock = start_database(data_dir / "pgdata", dbname)
    port = free_port(aws_port)
    moto = start_aws(port)
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **aws_env(endpoint),
        "CALIB_DB_UNIX_SOCK": sock, "CALIB_DB_NAME": dbname, "CALIB_DB_USER": "postgres",
        "CALIB_CAL_BUCKET": "mwa-calib-solutions", "CALIB_PRODUCTS_BUCKET": "mwa-calib-products",
        "CALIB_CALLBACK_ALLOW_HOSTS": "127.0.0.1,localhost",
        "POWERTOOLS_SERVICE_NAME": "mwa-calib", "POWERTOOLS_METRICS_NAMESPACE": "MWACalibLocal",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true",
        "MPLCONFIGDIR": str(data_dir / "mplconfig"),
    }
    queues = create_resources(env)
    env["CALIB_REQUEST_QUEUE_URL"] = queues[REQUEST_QUEUE]
    metafits_dir = data_dir / "metafits"  # the demo's targets without tile rows: their metafits
    from devstack import metadata_server

    metadata = metadata_server.start(extra_dirs=[metafits_dir], port=free_port(METADATA_PORT))
    env.update(metadata.env())  # CALIB_METADATA_URL and CALIB_METADATA_ALLOW_HOSTS: the local metadata service
    os.environ.update(env)

    from chalicelib import migrate

    applied = migrate.apply()
    if applied:
        print(f"[stack] migrations applied: {', '.join(applied)}")
    if seed_demo:
        from devstack import demo

        if not demo.is_seeded():
            print("[stack] seeding the demo data (first run only)...")
            counts = demo.seed_database(demo.generate(), progress=True, metafits_dir=metafits_dir)
            print(f"[stack] seeded: {counts}")
        land_real_fit(env)
    print(f"[stack] metadata service on {metadata.base_url} ({len(metadata.index.obsids())} metafits)")
    print(f"[stack] database, S3 and SQS ready in {time.perf_counter() - t0:.1f} s")
    return LocalStack(db_sock=sock, aws_endpoint=endpoint, env=env, queues=queues), moto


def summary_range() -> str:
    """The query string of the week before the newest fit (the demo's data lie in March 2026)."""
    from chalicelib.db import summary as summary_queries

    newest = summary_queries.latest_fitted_obsid()
    return f"?start={newest - 7 * 86400}&end={newest + 86400}" if newest else ""


def serve(host: str = "127.0.0.1", port: int = 8000, aws_port: int = 5100, seed_demo: bool = True,
          data_dir: Path | None = None) -> int:
    """Run everything until Ctrl-C; returns the exit code of chalice local."""
    stack, moto = prepare(aws_port=aws_port, seed_demo=seed_demo, data_dir=data_dir)
    pump = EventPump(stack.env, stack.queues)
    pump.start()
    cmd = [str(Path(sys.executable).parent / "chalice"), "local", "--host", host, "--port", str(port),
           "--stage", "dev", "--no-autoreload"]
    chalice = subprocess.Popen(cmd, cwd=PROJECT, env={**os.environ, **stack.env})
    print(f"[stack] summary page: http://{host}:{port}/calib/summary{summary_range()}")
    print(f"[stack] health:       http://{host}:{port}/calib/health")
    print(f"[stack] local S3/SQS: {stack.aws_endpoint}   (Ctrl-C stops everything)")
    stopping = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stopping.is_set() and chalice.poll() is None:
            stopping.wait(0.5)
    finally:
        pump.stop_event.set()
        stop_process(chalice)
        moto.stop()
        pump.join(5)
        from chalicelib import db

        db.close()
        print("[stack] stopped")
    return 0 if stopping.is_set() else (chalice.returncode or 0)
