"""The README's run command, start to stop: the real local stack in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.mwa_files import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """``python -m devstack serve`` with its own data directory and ports; stopped with Ctrl-C."""
    data = tmp_path_factory.mktemp("stack")
    port, aws_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALIB_", "AWS_"))}
    log = open(data / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "serve", "--port", str(port), "--aws-port", str(aws_port),
         "--data-dir", str(data)],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the stack exited early:\n{(data / 'serve.log').read_text()[-3000:]}")
        if _listening(port):
            break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"the stack did not come up:\n{(data / 'serve.log').read_text()[-3000:]}")
    yield {"base": base, "proc": proc, "port": port, "aws_port": aws_port, "data": data}
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)


def test_health_answers_200(stack):
    status, _, body = _get(stack["base"] + "/calib/health")
    assert status == 200, body
    assert json.loads(body)["ok"] is True


def test_summary_url_is_printed(stack):
    assert f"http://127.0.0.1:{stack['port']}/calib/summary" in (stack["data"] / "serve.log").read_text()


def test_a_presigned_solution_zip_is_served_from_local_s3(stack):
    status, headers, _ = _get(stack["base"] + "/calib/get_cal_solution?obs_id=1457904016")
    assert status == 302
    location = headers["Location"]
    assert location.startswith(f"http://127.0.0.1:{stack['aws_port']}/")
    status, headers, body = _get(location)
    assert status == 200 and body[:2] == b"PK"


def test_ctrl_c_stops_every_process(stack):
    proc = stack["proc"]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(30) == 0
    time.sleep(0.5)
    assert not _listening(stack["port"]) and not _listening(stack["aws_port"])
    assert "[stack] stopped" in (stack["data"] / "serve.log").read_text()
