"""The local metadata web service of the devstack: the fixtures' metafits by GPSTIME, the demo's, 404 and 400."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from devstack import metadata_server
from tests.metadata_support import metafits_path
from tests.mwa_files import PROJECT_ROOT

FIXTURE_METAFITS = (1347318488, 1365977896, 1369821496, 1457904016)


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


@pytest.fixture
def server(tmp_path):
    srv = metadata_server.start(extra_dirs=[tmp_path / "demo"])
    yield srv
    srv.stop()


@pytest.mark.parametrize("obsid", FIXTURE_METAFITS)
def test_every_fixture_metafits_is_served_byte_for_byte(server, obsid):
    status, body, kind = get(f"{server.base_url}{obsid}")

    assert (status, kind) == (200, "application/fits")
    assert body == metafits_path(obsid).read_bytes()


def test_an_unknown_obsid_is_a_404_and_a_malformed_one_a_400(server):
    assert get(f"{server.base_url}1234567890")[0] == 404
    assert get(f"{server.base_url}12ab")[0] == 400
    assert get(server.base_url.split("?")[0])[0] == 400  # no obs_id at all
    assert get(f"http://{server.host}:{server.port}/metadata/other?obs_id=1365977896")[0] == 404


def test_a_metafits_the_demo_writes_while_it_runs_is_served_under_its_gpstime(server, tmp_path):
    from astropy.io import fits

    assert get(f"{server.base_url}1400000000")[0] == 404
    with fits.open(metafits_path(1365977896)) as hdus:
        hdus[0].header["GPSTIME"] = 1400000000
        (tmp_path / "demo").mkdir()
        hdus.writeto(tmp_path / "demo" / "target_a_metafits.fits")

    status, body, _ = get(f"{server.base_url}1400000000")

    assert status == 200
    assert body == (tmp_path / "demo" / "target_a_metafits.fits").read_bytes()
    assert server.requests[-1] == "/metadata/fits?obs_id=1400000000"


def test_env_points_the_service_at_it_and_allows_its_loopback_address(server):
    env = server.env()

    assert env["CALIB_METADATA_URL"] == f"http://127.0.0.1:{server.port}/metadata/fits?obs_id="
    assert env["CALIB_METADATA_ALLOW_HOSTS"] == "127.0.0.1"


def test_the_command_line_serves_until_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "devstack.metadata_server", "--port", "0"], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "serving 4 metafits (1347318488, 1365977896, 1369821496, 1457904016)" in first
        base = first.split(" at ", 1)[1].split("<obs_id>", 1)[0]
        status, body, _ = get(f"{base}1369821496")
        assert status == 200 and body == metafits_path(1369821496).read_bytes()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the server did not stop on Ctrl-C; it wrote: {proc.communicate()[1][-2000:]}")
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
