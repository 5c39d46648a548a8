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
        except s3.exceptions.BucketAlreadyOwnedByYou:  # moto's state outlives a server in one process
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
        assert len(imgs) == 6  # tilediff, timediff, xydiff, gains, gaintimes, phasefit
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


def test_fit_page_line_error_column_marks_the_14_long_baseline_tiles_in_a_browser(local_service, originals):
    """The real fit of 1369821496, stored as its landing stores it: the browser shows the line-error column
    and marks exactly the 14 unflagged LBF*/LBG* tiles (bold text and a title, not colour alone)."""
    from chalicelib.formats.metafits import observation_from_metafits, read_metafits
    from chalicelib.ingest.fit_inputs import load_fit_inputs
    from chalicelib.ingest.fitting import fit_result
    from chalicelib.ingest.modelerror import line_model_error
    from chalicelib.ingest.store import fit_record, store_fit
    from tests.real_fit import fixture_files

    solutions, metafits = fixture_files()
    inputs = load_fit_inputs(solutions, metafits)
    result = fit_result(inputs)
    rows = result.rows()
    error = line_model_error(inputs.jones, inputs.weights > 0, inputs.freqs_hz, inputs.tile_ids,
                             result.reference_tile_id, rows)
    fitid = 1685856000123456
    store_fit(fit_record(inputs.hyperdrive_header, fitid=fitid, obsid=1369821496, creator="calvin"), rows,
              observation_from_metafits(read_metafits(metafits)), model_error=error)

    fit_url = f"{local_service}/calib/fit?fitid={fitid}"
    doc = fx.parse_html(browser(fit_url))
    table = doc.find("table", id="tile-table")
    titles = [th.text() for th in table.find("thead").find_all("th")]
    assert any("Line error X (rad)" in t for t in titles) and any("Over limit" in t for t in titles)
    marked = [tr for tr in table.find("tbody").find_all("tr") if tr.find_all("strong", "over")]
    names = sorted(tr.find_all("td")[1].text().strip() for tr in marked)
    lb = sorted(n for n, f in zip(originals["name_of"], originals["flagged"]) if n.startswith(("LBF", "LBG")) and not f)
    assert len(lb) == 14 and names == lb
    for tr in marked:
        strong = tr.find_all("strong", "over")[0]
        assert strong.text().strip() == "over" and "0.3 rad" in strong.attrs["title"]
    ok_rows = [tr for tr in table.find("tbody").find_all("tr") if tr.find_all("td")[-1].text().strip() == "ok"]
    assert len(ok_rows) == 126 - 14
    ARTIFACTS.mkdir(exist_ok=True)
    browser(fit_url + "&tile_sort=-model_error_x_rad#tiles", screenshot=ARTIFACTS / "fit-model-error.png",
            width=1280, height=2400)
