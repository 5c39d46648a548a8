"""Cold start: what a fresh Lambda container pays before its first answer, per code path.

Usage: python bench/bench_cold_start.py [--runs N] [--importtime] [--check]

Every case runs in a fresh interpreter (``python -c ...``), as a new Lambda container would, and
reports the wall time of its timed part (median, min, max of N runs) and which heavy packages it
left loaded. The JSON-route cases call the app the way Lambda does (``app(event, context)`` with
an API Gateway proxy event); ``/calib/health`` talks to a moto server on loopback (so boto3 is
imported and its clients made for real) with the database query stubbed (a connection to RDS
adds ~40 ms). ``--importtime`` also prints the 12 slowest imports of ``import app`` (from
``python -X importtime``). ``--check`` exits 1 when importing the app (or a JSON route's first
call) loads matplotlib, astropy or the X-Ray SDK, or a JSON route's cold path exceeds the 1 s target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "astropy", "aws_xray_sdk", "boto3", "numpy", "jinja2")
FORBIDDEN_ON_JSON_PATH = ("matplotlib", "astropy", "aws_xray_sdk")
TARGET_S = 1.0

_PROLOGUE = """
import json, sys, time
t0 = time.perf_counter()
"""
_EPILOGUE = """
dt = time.perf_counter() - t0
print("BENCH" + json.dumps({"s": dt, "mods": sorted({m.split(".")[0] for m in sys.modules})}))
"""

_API_EVENT = """
def _event(path, query=None):
    return {"resource": path, "path": path, "httpMethod": "GET", "headers": {"Host": "127.0.0.1"},
            "multiValueHeaders": {"Host": ["127.0.0.1"]}, "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
            "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
            "requestContext": {"resourcePath": path, "httpMethod": "GET", "requestId": "bench",
                               "stage": "api", "path": path, "domainName": "127.0.0.1"}}

class _Ctx:
    function_name = "mwa-calib-prod"; function_version = "$LATEST"; memory_limit_in_mb = 1536
    invoked_function_arn = "arn:aws:lambda:ap-southeast-2:123456789012:function:mwa-calib-prod"
    aws_request_id = "bench"; log_group_name = "/aws/lambda/mwa-calib-prod"; log_stream_name = "bench"
    def get_remaining_time_in_millis(self): return 29000
"""

# name -> (set-up code run before the timer, timed code, is it a JSON-route cold path?)
CASES: dict[str, tuple[str, str, bool]] = {
    "import app": ("", "import app", True),
    "import app + first GET /calib/openapi.json": (
        _API_EVENT,
        "import app\nr = app.app(_event('/calib/openapi.json'), _Ctx())\nassert r['statusCode'] == 200, r",
        True),
    "import app + first GET /calib/health (moto S3/SQS, DB stubbed)": (
        _API_EVENT,
        "import app\nfrom chalicelib import db\ndb.query = lambda sql, params=None: [{'one': 1}]\n"
        "r = app.app(_event('/calib/health'), _Ctx())\nassert r['statusCode'] == 200, r",
        True),
    "import chalicelib.formats.hyperdrive (astropy stays lazy)": ("", "import chalicelib.formats.hyperdrive", False),
    "hyperdrive path: + astropy.io.fits": ("", "import chalicelib.formats.hyperdrive\nfrom astropy.io import fits",
                                           False),
    "plot path: chalicelib.plots.service + matplotlib Agg": (
        "", "import chalicelib.plots.service\nfrom matplotlib.figure import Figure\n"
            "from matplotlib.backends.backend_agg import FigureCanvasAgg", False),
    "powertools Tracer() (X-Ray SDK, boto3 patch)": (
        "", "from aws_lambda_powertools import Tracer\nTracer(patch_modules=('botocore',))", False),
    "import boto3": ("", "import boto3", False),
}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CALIB_", "POWERTOOLS_"))}
    env.update({
        "PYTHONPATH": str(PROJECT_ROOT), "PYTHONDONTWRITEBYTECODE": "0",
        "POWERTOOLS_SERVICE_NAME": "mwa-calib", "POWERTOOLS_METRICS_NAMESPACE": "MWACalibBench",
        "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_REGION": "ap-southeast-2", "AWS_DEFAULT_REGION": "ap-southeast-2",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "MPLCONFIGDIR": str(Path(tempfile.gettempdir()) / "mwa-calib-bench-mpl"),
        # a Lambda-like environment, so the Tracer case starts the SDK for real
        "LAMBDA_TASK_ROOT": str(PROJECT_ROOT), "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    })
    env.update(extra or {})
    return env


def run_case(setup: str, timed: str, env: dict[str, str]) -> dict:
    code = textwrap.dedent(setup) + _PROLOGUE + timed + "\n" + _EPILOGUE
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"case failed (rc={out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(line[len("BENCH"):])


def importtime_top(env: dict[str, str], n: int = 12) -> list[tuple[int, str]]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app"], cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    rows = []
    for ln in out.stderr.splitlines():
        if not ln.startswith("import time:") or "cumulative" in ln:
            continue
        _self_us, cum_us, name = (p.strip() for p in ln[len("import time:"):].split("|"))
        rows.append((int(cum_us), name))
    return sorted(rows, reverse=True)[:n]


def _start_moto() -> tuple[object, str, str]:
    import logging
    import socket

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    kw = dict(endpoint_url=endpoint, region_name="ap-southeast-2", aws_access_key_id="bench",
              aws_secret_access_key="bench")
    s3 = boto3.client("s3", **kw)
    for bucket in ("bench-cal", "bench-products"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
    queue = boto3.client("sqs", **kw).create_queue(QueueName="bench-requests")["QueueUrl"]
    return server, endpoint, queue


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--importtime", action="store_true", help="print the slowest imports of `import app`")
    parser.add_argument("--check", action="store_true", help="exit 1 when a JSON cold path breaks the rules")
    args = parser.parse_args()

    server, endpoint, queue = _start_moto()
    env = _env({"AWS_ENDPOINT_URL": endpoint, "CALIB_CAL_BUCKET": "bench-cal",
                "CALIB_PRODUCTS_BUCKET": "bench-products", "CALIB_REQUEST_QUEUE_URL": queue})
    # one untimed run warms the page cache, .pyc files and matplotlib's font cache
    for setup, timed, _ in CASES.values():
        run_case(setup, timed, env)

    failures: list[str] = []
    print(f"cold start, {args.runs} fresh interpreters per case (Python {sys.version.split()[0]}); "
          f"JSON-route target {TARGET_S:.1f} s\n")
    print(f"{'case':<66} {'median':>7} {'min':>7} {'max':>7}  heavy modules loaded")
    print("-" * 130)
    try:
        for name, (setup, timed, json_path) in CASES.items():
            results = [run_case(setup, timed, env) for _ in range(args.runs)]
            times = [r["s"] for r in results]
            loaded = [m for m in HEAVY if m in results[0]["mods"]]
            med = statistics.median(times)
            flag = ""
            if json_path:
                bad = [m for m in FORBIDDEN_ON_JSON_PATH if m in loaded]
                if bad:
                    failures.append(f"{name}: loads {', '.join(bad)}")
                    flag = "  << loads " + ", ".join(bad)
                if med > TARGET_S:
                    failures.append(f"{name}: {med:.3f} s > {TARGET_S} s")
                    flag += "  << over target"
            print(f"{name:<66} {med:7.3f} {min(times):7.3f} {max(times):7.3f}  {', '.join(loaded) or '-'}{flag}")
        if args.importtime:
            print("\nslowest imports of `import app` (cumulative, one run):")
            for us, mod in importtime_top(env):
                print(f"  {us / 1e6:7.3f} s  {mod}")
    finally:
        server.stop()
    if failures:
        print("\nJSON cold path problems:\n  " + "\n  ".join(failures))
    return 1 if (args.check and failures) else 0


if __name__ == "__main__":
    sys.exit(main())
