"""In a real browser: the summary page of the running local service, its form, a Fit ID link, and
every plot image of the fit page; then axe-core's accessibility rules, the images, the keyboard
and the sticky table parts on the summary page, a fit page and the error pages at 1350 and 390 px.

The service runs as ``chalice local`` (a subprocess) against the test database and a moto S3
server on loopback; the browser is Debian's ``chromium`` in headless mode (the test set-up
installs it: ``apt-get install -y chromium``; without it this test FAILS, it never skips).

The first test uses headless ``--dump-dom``, which runs no scripted interaction, so "submitting
the form" is done the way the browser itself would for a GET form: the form's action and its
inputs' names are read from the rendered DOM, given new values and sent as the query string. Each
plot <img> URL must answer 302 -> 200 image/png. The second drives the same chromium with npm's
playwright-core (``tests/browser_pages.js``; ``bin/_browser_env.sh`` installs it and axe-core
into .local/node, and bin/test sources that). Screenshots are saved in test-artifacts/.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import pytest

from tests import summary_fixtures as fx

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

    from devstack.stack import stop_process

    fx.seed()
    moto_port, port = free_port(), free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{moto_port}"
    # moto keeps its state per process: start each service from empty buckets
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"), timeout=30).close()
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
        stop_process(proc)
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


# ------------------------------------------------------------------ accessibility, images, keyboard

WIDTHS = (1350, 390)  # Lighthouse's desktop width and a phone's
HEIGHT = 600  # px: short enough that the fixture's 19-row tile table overflows its box (80vh)


def node_modules() -> Path:
    path = Path(os.environ.get("CALIB_NODE_MODULES") or PROJECT / ".local" / "node" / "node_modules")
    for package in ("axe-core", "playwright-core"):
        if not (path / package / "package.json").exists():
            pytest.fail(f"npm package {package} is missing from {path}: bin/test installs it "
                        "(bin/_browser_env.sh, npm install into .local/node)")
    return path


def in_chromium(pages: dict[str, str], widths=WIDTHS) -> dict[tuple[str, int], dict]:
    """What tests/browser_pages.js finds on each page at each width (axe, images, keyboard, sticky)."""
    node = shutil.which("node") or pytest.fail("node is missing: bin/test installs nodejs (bin/_browser_env.sh)")
    chromium_binary()
    ARTIFACTS.mkdir(exist_ok=True)
    job = {"pages": [{"name": n, "url": u} for n, u in pages.items()], "widths": list(widths), "height": HEIGHT,
           "screenshots": str(ARTIFACTS)}
    out = subprocess.run([node, str(PROJECT / "tests" / "browser_pages.js"), json.dumps(job)], capture_output=True,
                         text=True, timeout=900, env={**os.environ, "CALIB_NODE_MODULES": str(node_modules())})
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    (ARTIFACTS / "browser-pages.json").write_text(json.dumps(results, indent=1))
    return {(r["name"], r["width"]): r for r in results}


def png_of(url: str) -> tuple[int, int]:
    """The pixel size of the PNG a plot URL redirects to."""
    from PIL import Image

    status, headers, _ = get_no_redirect(url)
    assert status == 302, (url, status)
    with urllib.request.urlopen(headers["location"], timeout=60) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png", url
        body = r.read()
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(body)).size


def violations(result: dict) -> str:
    return "\n".join(f"{v['id']} ({v['impact']}): {v['help']}: " + "; ".join(
        f"{n['target']} {n['summary']}" for n in v["nodes"]) for v in result["axe"]["violations"])


def test_pages_pass_axe_keep_their_layout_and_serve_every_plot_width(local_service):
    base = local_service
    week = "start=2026-03-12T00:00&end=2026-03-18T23:59"
    fit_url = f"{base}/calib/fit?fitid={fx.F_MWA}"  # two observations: ten plots
    pages = {
        "summary": f"{base}/calib/summary?{week}",
        "fit": fit_url,
        "summary-error": f"{base}/calib/summary?start=yesterday%3Cb%3E&end=2026-03-18T23:59",
        "fit-error": f"{base}/calib/fit?fitid=12x",
    }

    # every srcset width of every plot answers a PNG of that pixel width, the page's width/height
    # being the full drawing's size (drawn here first, so the browser finds them stored)
    doc = fx.parse_html(get_no_redirect(fit_url)[2].decode())
    imgs = doc.find_all("img", "plot")
    assert len(imgs) == 12  # six kinds, two observations
    for img in imgs:
        widths = {}
        for candidate in img.attrs["srcset"].split(", "):
            url, descriptor = candidate.rsplit(" ", 1)
            widths[int(descriptor.rstrip("w"))] = urljoin(fit_url, url.replace("&amp;", "&"))
        assert sorted(widths) == [480, 960, 1440]
        full = (int(img.attrs["width"]), int(img.attrs["height"]))
        for w, url in widths.items():
            assert parse_qs(urlparse(url).query)["width"] == [str(w)]
            size = png_of(url)
            assert size[0] == w, (url, size)
            assert abs(size[1] - full[1] * w / full[0]) <= 0.5, (url, size, full)
        assert png_of(urljoin(fit_url, img.attrs["src"]))[0] in widths
        assert png_of(urljoin(fit_url, img.parent.attrs["href"])) == full  # the link opens the full drawing

    seen = in_chromium(pages)
    for (name, width), r in seen.items():
        where = f"{name} at {width} px"
        assert r["status"] == (400 if name.endswith("error") else 200), where
        assert not r["axe"]["violations"], f"{where}:\n{violations(r)}"
        assert "target-size" in r["axe"]["passes"] or name.endswith("error"), where  # the rule ran and found targets
        assert not r["console_errors"], (where, r["console_errors"])
        # nothing failed to load (an error page's own answer is its 400)
        assert [f for f in r["failed"] if f["url"] != pages[name]] == [], (where, r["failed"])
        assert r["overflow_x"] <= 0, f"{where}: the page scrolls sideways by {r['overflow_x']} px"
        assert r["description"] and len(r["description"]) > 40, where
        assert r["icon"] == f"{base}/calib/favicon.svg", where
        # the keyboard: the first Tab is the skip link; after following it, Tab goes on from its target
        first, nxt = r["keyboard"]["first"], r["keyboard"]["next"]
        assert first["tag"] == "A" and first["text"].startswith("Skip to") and first["visible"], where
        assert nxt["target_exists"] and nxt["hash"] == first["href"] and nxt["after_target"], (where, r["keyboard"])

    for width in WIDTHS:
        summary, fit = seen[("summary", width)], seen[("fit", width)]
        assert summary["keyboard"]["first"]["href"] == "#fits" and fit["keyboard"]["first"]["href"] == "#receivers"
        # images: sized before they load (no layout shift), the first two eager, the first one urgent
        images = fit["images"]
        assert len(images) == 12  # six kinds, two observations
        assert [i["loading"] for i in images] == ["eager", "eager"] + ["lazy"] * 10
        assert [i["fetchpriority"] for i in images] == ["high"] + [None] * 11
        for i in images:
            assert i["width"] and i["height"] and i["sizes"], i
            shown = i["shown"]
            assert abs(shown["height"] / shown["width"] - int(i["height"]) / int(i["width"])) < 0.01, i
        first = images[0]
        chosen = int(parse_qs(urlparse(first["currentSrc"]).query)["width"][0])
        assert first["complete"] and chosen == 480, f"a {first['shown']['width']:.0f} px plot was fetched {chosen} wide"
        assert fit["layout_shift"] < 0.01, fit["layout_shift"]
        # sticky headers stay at the top of their scrolled box (the page, for the summary table),
        # and the fit tables' first column stays at the left when scrolled sideways
        for r in (summary, fit):
            for t in r["sticky"]:
                if t["scrolled_down"] > 50:
                    assert abs(t["head_offset"]) <= 2, (r["name"], width, t)
                if t.get("scrolled_right", 0) > 50:
                    assert abs(t["first_column_offset"]) <= 2, (r["name"], width, t)
        boxes = {t["table"]: t for t in fit["sticky"]}
        assert boxes["tile-table"]["box"] and boxes["tile-table"]["scrolled_down"] > 50  # 18 tiles overflow the box
        if width == 390:
            assert boxes["tile-table"]["scrolled_right"] > 50  # 12 columns: the box scrolls sideways
        else:
            assert [t["table"] for t in summary["sticky"]] == ["fits"] and summary["sticky"][0]["scrolled_down"] > 50

        # the error pages: the field at fault is marked, described by the message, and shows what was sent
        for name, field, raw in (("summary-error", "start", "yesterday<b>"), ("fit-error", "fitid", "12x")):
            r = seen[(name, width)]
            assert r["title"].startswith("Error"), r["title"]
            assert [i["id"] for i in r["invalid"]] == [field], r["invalid"]
            marked = r["invalid"][0]
            assert marked["value"] == raw and marked["type"] == "text"
            assert marked["describedby"] and raw in marked["description"] and field in marked["description"]


def test_icon_and_robots_are_answered(local_service):
    for path in ("/calib/favicon.svg", "/favicon.ico"):
        status, headers, body = get_no_redirect(local_service + path)
        assert status == 200 and headers["content-type"] == "image/svg+xml", path
        assert body.startswith(b"<svg") and b"</svg>" in body
    status, headers, body = get_no_redirect(local_service + "/robots.txt")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    rules = [line.split(":", 1) for line in body.decode().splitlines() if line and not line.startswith("#")]
    assert [(k.strip().lower(), v.strip()) for k, v in rules] == [("user-agent", "*"), ("disallow", "/calib/")]


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


# ------------------------------------------------------------------ a fit retired by an operator

RETIRE_REASON = "receiver 3 cable fault during the fit"



def _post(url: str) -> int:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("POST", f"{u.path}?{u.query}")
    status = conn.getresponse().status
    conn.close()
    return status


def test_a_retired_fit_is_struck_through_with_its_reason(local_service):
    base = local_service
    assert _post(f"{base}/calib/admin/retire?" + urlencode({"fitid": fx.F_CALVIN, "why": RETIRE_REASON})) == 200
    week = urlencode({"start": "2026-03-12T00:00", "end": "2026-03-18T23:59"})
    doc = fx.parse_html(browser(f"{base}/calib/summary?{week}"))
    struck = doc.find_all("del", "retired")
    assert [d.find("a", "fitid").text() for d in struck] == [str(fx.F_CALVIN)]
    assert struck[0].attrs["title"] == f"retired: {RETIRE_REASON}"
    reasons = [s.text() for s in doc.find_all("span", "retired-reason")]
    assert reasons == [f"retired: {RETIRE_REASON}"]
    # the other fits are not struck through
    assert {a.text() for a in doc.find_all("a", "fitid")} - {str(fx.F_CALVIN)} == {
        str(fx.F_MWA), str(fx.F_C_CALVIN), str(fx.F_C_MWA)}
    ARTIFACTS.mkdir(exist_ok=True)
    browser(f"{base}/calib/summary?{week}", screenshot=ARTIFACTS / "summary-retired.png", width=1280, height=1000)

    fit = fx.parse_html(browser(f"{base}/calib/fit?fitid={fx.F_CALVIN}"))
    assert fit.find("h1").find("del", "retired").text() == str(fx.F_CALVIN)
    assert RETIRE_REASON in fit.find("p", "retired-reason").text()
    other = fx.parse_html(browser(f"{base}/calib/fit?fitid={fx.F_MWA}"))
    assert other.find_all("del") == [] and other.find_all("p", "retired-reason") == []
