"""Cold start: the JSON routes' path never imports matplotlib, astropy or the X-Ray SDK.

Each check runs in a fresh interpreter (as a new Lambda container would). bench/bench_cold_start.py
reports the times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "astropy", "aws_xray_sdk")

_EVENT = """
def _event(path):
    return {"resource": path, "path": path, "httpMethod": "GET", "headers": {"Host": "127.0.0.1"},
            "multiValueHeaders": None, "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
            "requestContext": {"resourcePath": path, "httpMethod": "GET", "requestId": "cold", "stage": "api",
                               "path": path}}

class _Ctx:
    function_name = "mwa-calib-prod"; memory_limit_in_mb = 1536; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:ap-southeast-2:123456789012:function:mwa-calib-prod"
    def get_remaining_time_in_millis(self): return 29000
"""


def _loaded_after(code: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(PROJECT), POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING",
               AWS_DEFAULT_REGION="ap-southeast-2",
               # as in Lambda: tracing is not disabled by the environment, only kept off the JSON path
               POWERTOOLS_TRACE_DISABLED="false", LAMBDA_TASK_ROOT=str(PROJECT))
    script = code + "\nimport json, sys\nprint('MODS' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MODS"))
    return set(json.loads(line[4:]))


def test_importing_the_app_loads_no_plotting_fits_or_tracing_code():
    loaded = _loaded_after("import app")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "boto3" not in loaded  # clients are made on first use


@pytest.mark.parametrize("module", [
    "chalicelib.api.cal_solution", "chalicelib.grafana.api", "chalicelib.calrequests.intake", "chalicelib.legacy",
    "chalicelib.openapi", "chalicelib.formats.hyperdrive", "chalicelib.plots.service",
])
def test_route_modules_keep_heavy_imports_lazy(module):
    loaded = _loaded_after(f"import app\nimport {module}")
    assert not loaded & set(HEAVY), (module, sorted(loaded & set(HEAVY)))


def test_first_json_call_through_the_lambda_entry_point_stays_light():
    loaded = _loaded_after(_EVENT + "import app\nr = app.app(_event('/calib/openapi.json'), _Ctx())\n"
                                    "assert r['statusCode'] == 200, r")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
