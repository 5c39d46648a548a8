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


def test_summary_url_is_printed_and_shows_the_demo_week(stack):
    import re

    log = (stack["data"] / "serve.log").read_text()
    url = re.search(rf"http://127\.0\.0\.1:{stack['port']}/calib/summary\S*", log).group(0)
    status, _, body = _get(url)
    assert status == 200
    assert body.count(b"fit?fitid=") >= 10  # the newest demo week, not an empty page


def test_a_presigned_solution_zip_is_served_from_local_s3(stack):
    status, headers, _ = _get(stack["base"] + "/calib/get_cal_solution?obs_id=1457904016")
    assert status == 302
    location = headers["Location"]
    assert location.startswith(f"http://127.0.0.1:{stack['aws_port']}/")
    status, headers, body = _get(location)
    assert status == 200 and body[:2] == b"PK"


def test_a_target_without_tile_rows_gets_its_tiles_from_the_local_metadata_service(stack):
    """The demo seeds every 5th target without tile rows and writes its metafits; the stack serves them."""
    import io
    import re
    import struct
    import zipfile

    import boto3
    from astropy.io import fits

    log = (stack["data"] / "serve.log").read_text()
    served = r"\[stack\] metadata service on http://127\.0\.0\.1:\d+/metadata/fits\?obs_id= \(\d+ metafits\)"
    assert re.search(served, log)
    files = sorted((stack["data"] / "metafits").glob("*_metafits.fits"))
    assert len(files) >= 20  # a month of targets, every 5th
    for path in files:
        obsid = int(path.name.split("_")[0])
        status, headers, _ = _get(stack["base"] + f"/calib/get_cal_solution?obs_id={obsid}")
        if status == 302:
            break
        assert status == 404  # no calibrator in the window: a 404 that says so, never a 5xx
    else:
        pytest.fail("no demo target without tile rows has a solution")
    _, _, body = _get(headers["Location"])
    z = zipfile.ZipFile(io.BytesIO(body))
    name = next(n for n in z.namelist() if n.endswith(".bin"))
    n_ant = struct.unpack_from("<6I", z.read(name), 8)[3]
    with fits.open(path) as hdus:
        assert n_ant == len(set(int(a) for a in hdus["TILEDATA"].data["Antenna"]))
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{stack['aws_port']}", region_name="ap-southeast-2",
                      aws_access_key_id="local", aws_secret_access_key="local")
    stored = s3.get_object(Bucket="mwa-calib-products", Key=f"metadata/{obsid}_metafits.fits")["Body"].read()
    assert stored == path.read_bytes()  # fetched from the local metadata service once, kept in S3


def test_the_real_hyperdrive_fit_is_ingested_through_the_s3_path(stack):
    """The stack lands the real 1369821496 fit in local S3; the pump feeds it to on_cal_file."""
    deadline = time.time() + 60
    while time.time() < deadline:
        status, _, body = _get(stack["base"] + "/calib/get_cal_fits?obs_id=1369821496&max_time_separation=0")
        if status == 200:
            break
        time.sleep(1)
    assert status == 200, body
    fits = json.loads(body)
    assert list(fits) == ["1685790000000000"]
    cal, offset, key = fits["1685790000000000"]
    assert (cal, offset) == (1369821496, 0) and key.startswith("fits/1369821496/1685790000000000/hyp_soln_")
    status, headers, _ = _get(stack["base"] + "/calib/get_cal_solution?obs_id=1369821496&max_time_separation=0")
    assert status == 302


def test_a_request_travels_the_queue_and_its_callback_arrives(stack):
    """README flow: add_cal_request -> SQS -> stored; a fit file lands in S3 -> the callback is POSTed."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import boto3

    got: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        callback = f"http://127.0.0.1:{server.server_port}/cb"
        status, _, body = _get(stack["base"] + "/calib/add_cal_request?obs_id=1457938216&asvo_job_id=42"
                               f"&callback_url={urllib.request.quote(callback, safe='')}")
        assert status == 200 and body == b"", body
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{stack['aws_port']}", region_name="ap-southeast-2",
                          aws_access_key_id="local", aws_secret_access_key="local")
        time.sleep(2)  # the pump stores the queued request first
        s3.put_object(Bucket="mwa-calib-solutions", Key="fits/1457937960/1773900000000000/1457937960_error.json",
                      Body=b'{"message": "hyperdrive did not converge"}')
        # one pump runs the stack's event functions in turn (Lambda runs them side by side), so this
        # event may wait behind the previous test's landing drawing its six plots
        deadline = time.time() + 90
        while not got and time.time() < deadline:
            time.sleep(0.2)
        assert got, "no callback within 90 s"
        assert got[0]["cal_id"] == 1457937960 and got[0]["target_obs_id"] == 1457938216
        assert got[0]["asvo_job_id"] == 42 and got[0]["success"] is False
        assert "did not converge" in got[0]["message"]
    finally:
        server.shutdown()


def test_ctrl_c_stops_every_process(stack):
    proc = stack["proc"]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(30) == 0
    time.sleep(0.5)
    assert not _listening(stack["port"]) and not _listening(stack["aws_port"])
    assert "[stack] stopped" in (stack["data"] / "serve.log").read_text()


def test_a_second_run_reuses_the_data(stack):
    """After Ctrl-C, the same command on the same data comes back without seeding again."""
    data = stack["data"]
    port, aws_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALIB_", "AWS_"))}
    with open(data / "serve2.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack", "serve", "--port", str(port), "--aws-port", str(aws_port),
             "--data-dir", str(data)],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 120
            while time.time() < deadline and not _listening(port):
                assert proc.poll() is None, (data / "serve2.log").read_text()[-3000:]
                time.sleep(0.3)
            status, _, body = _get(f"http://127.0.0.1:{port}/calib/get_cal_fits?obs_id=1457904016")
            assert status == 200 and "1773831785589944" in json.loads(body)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(30)
    text = (data / "serve2.log").read_text()
    assert "seeding the demo data" not in text and "[stack] stopped" in text
    assert "seeding the demo data" in (data / "serve.log").read_text()
