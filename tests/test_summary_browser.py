"""In a real browser: the summary page of the running local service, its form, a Fit ID link, and
every plot image of the fit page.

The service runs as ``chalice local`` (a subprocess) against the test database and a moto S3
server on loopback; the browser is Debian's ``chromium`` in headless mode (the test set-up
installs it: ``apt-get install -y chromium``; without it this test FAILS, it never skips).

Headless ``--dump-dom`` runs no scripted interaction, so "submitting the form" is done the way the
browser itself would for a GET form: the form's action and its inputs' names are read from the
rendered DOM, given new values and sent as the query string. Each plot <img> URL must answer
302 -> 200 image/png. Screenshots (desktop and phone widths) are saved in test-artifacts/.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlparse

import pytest

from tests import test_summary_fixtures as fx

PROJECT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT / "test-artifacts"


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed: the browser test needs Debian's chromium package "
                "(apt-get install -y chromium); bin/test installs it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_service(clean_db):
    """chalice local on a free loopback port, with moto's S3 server; yields the base URL."""
    from moto.server import ThreadedMotoServer

    fx.seed()
    moto_port, port = free_port(), free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{moto_port}"
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "AWS_SESSION_TOKEN": "", "AWS_REGION": "ap-southeast-2", "AWS_DEFAULT_REGION": "ap-southeast-2",
           "POWERTOOLS_METRICS_DISABLED": "true", "MPLCONFIGDIR": str(Path(tempfile.gettempdir()) / "mwa-calib-mpl")}
    env.pop("AWS_SESSION_TOKEN")
    env.pop("CALIB_REQUEST_QUEUE_URL", None)  # another test's in-process queue; not needed here
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="ap-southeast-2", aws_access_key_id="local",
                      aws_secret_access_key="local")
    for bucket in (env["CALIB_PRODUCTS_BUCKET"], env["CALIB_CAL_BUCKET"]):
        try:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
        except s3.exceptions.BucketAlreadyOwnedByYou:  # moto's backends are per process: an earlier test's
            pass
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "chalice"), "local", "--host", "127.0.0.1", "--port", str(port),
         "--stage", "dev", "--no-autoreload"], cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # up when it answers anything over HTTP
            try:
                get_no_redirect(base + "/calib/summary?start=0&end=0")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"chalice local did not start:\n{log.read().decode(errors='replace')[-3000:]}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        moto.stop()
        log.close()


def browser(url: str, *, screenshot: Path | None = None, width: int = 1280, height: int = 1800) -> str:
    """Load the URL in headless chromium; the DOM after load (and a screenshot if asked)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--window-size={width},{height}", "--virtual-time-budget=20000"]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            cmd.append(f"--screenshot={screenshot}")
        else:
            cmd.append("--dump-dom")
        out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        if screenshot is not None:
            assert screenshot.exists() and screenshot.stat().st_size > 5000, out.stderr[-2000:]
        return out.stdout


def get_no_redirect(url: str) -> tuple[int, dict[str, str], bytes]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", u.path + ("?" + u.query if u.query else ""))
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_summary_form_fit_link_and_every_plot_in_a_browser(local_service):
    base = local_service
    # 1. the page as a browser renders it (default range: the last 7 days, empty for this data)
    dom = browser(f"{base}/calib/summary")
    doc = fx.parse_html(dom)
    form = doc.find("form")
    names = [i.attrs["name"] for i in form.find_all("input")]
    assert names == ["start", "end"] and form.attrs["method"] == "get"

    # 2. submit the form with the data set's week: what the browser sends for a GET form
    values = {"start": "2026-03-12T00:00", "end": "2026-03-18T23:59"}
    submitted = urljoin(f"{base}/calib/summary", form.attrs["action"]) + "?" + urlencode(
        {n: values[n] for n in names})
    ARTIFACTS.mkdir(exist_ok=True)
    doc = fx.parse_html(browser(submitted))
    assert doc.find("input", id="start").attrs["value"] == values["start"]
    fit_links = doc.find_all("a", "fitid")
    assert [a.text() for a in fit_links] == [str(fx.F_MWA), str(fx.F_CALVIN), str(fx.F_C_CALVIN), str(fx.F_C_MWA)]
    browser(submitted, screenshot=ARTIFACTS / "summary-desktop.png", width=1280, height=1000)
    browser(submitted, screenshot=ARTIFACTS / "summary-phone.png", width=390, height=1600)

    # 3. follow the first Fit ID link (the 'mwa' fit of two observations)
    fit_url = urljoin(submitted, fit_links[0].attrs["href"])
    fit_doc = fx.parse_html(browser(fit_url))
    assert fit_doc.find("table", id="receiver-table") and fit_doc.find("table", id="tile-table")

    # 4. every plot image of every observation row loads: 302 -> 200 image/png
    rows = fit_doc.find_all("section", "obsrow")
    assert len(rows) == 2
    for row in rows:
        imgs = row.find_all("img", "plot")
        assert len(imgs) == 5
        for img in imgs:
            src = urljoin(fit_url, img.attrs["src"])
            status, headers, _ = get_no_redirect(src)
            assert status == 302, (src, status)
            with urllib.request.urlopen(headers["location"], timeout=60) as r:
                body = r.read()
                assert r.status == 200 and r.headers["Content-Type"] == "image/png", src
                assert body[:8] == b"\x89PNG\r\n\x1a\n" and len(body) > 10_000
    # the plots are stored now, so the screenshot shows them all
    browser(fit_url, screenshot=ARTIFACTS / "fit-desktop.png", width=1280, height=2400)
    browser(fit_url, screenshot=ARTIFACTS / "fit-phone.png", width=390, height=3000)


def test_selection_page_and_its_form_in_a_browser(local_service):
    """The summary's selection link of an obsid, the explanation page, and its form sent with a gate."""
    base = local_service
    week = f"{base}/calib/summary?" + urlencode({"start": "2026-03-18T00:00", "end": "2026-03-18T23:59"})
    doc = fx.parse_html(browser(week))
    links = [a for a in doc.find_all("a", "why") if a.attrs["href"] == f"selection?obs_id={fx.A}"]
    assert links, "every obsid links its selection page"
    page_url = urljoin(week, links[0].attrs["href"])
    doc = fx.parse_html(browser(page_url))
    # A is a calibrator: its own newest fit (calvin, which lacks tile 38) at offset 0
    choice = doc.find("p", id="choice").text()
    assert str(fx.F_CALVIN) in choice and f"Calibrator {fx.A}" in choice
    rows = {r.find("td").text(): r.text() for r in doc.find("table", id="calibrators").find_all("tr")[1:]}
    assert "does not cover" in rows[str(fx.B)]  # B observed the picket fence
    assert "not in fit" in doc.find("table", id="tiles").text() and "Tile038" in doc.find("table", id="tiles").text()
    ARTIFACTS.mkdir(exist_ok=True)
    browser(page_url, screenshot=ARTIFACTS / "selection-desktop.png", width=1280, height=1400)
    browser(page_url, screenshot=ARTIFACTS / "selection-phone.png", width=390, height=2400)

    # the form, sent as the browser sends a GET form, asking every unflagged tile solved
    form = doc.find("form")
    assert form.attrs["method"] == "get"
    values = {i.attrs["name"]: i.attrs.get("value", "") for i in form.find_all("input")}
    for s in form.find_all("select"):
        values[s.attrs["name"]] = next(o.attrs["value"] for o in s.find_all("option") if "selected" in o.attrs)
    assert set(values) == {"obs_id", "max_time_separation", "allow_after", "prefer_fitid", "min_tile_fraction",
                           "min_phase_quality", "interpolate", "correct_attenuation"}
    values["min_tile_fraction"] = "1"
    sent = urljoin(page_url, form.attrs["action"]) + "?" + urlencode(values)
    doc = fx.parse_html(browser(sent))
    assert str(fx.F_MWA) in doc.find("p", id="choice").text()  # the 'mwa' fit solves all 15 unflagged tiles
    assert doc.find("input", id="min_tile_fraction").attrs["value"] == "1"
    calvin = [li.text() for li in doc.find("table", id="calibrators").find_all("li") if str(fx.F_CALVIN) in li.text()]
    assert calvin and "fails min_tile_fraction: 14 of the target's 15 tiles" in calvin[0]
