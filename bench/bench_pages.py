"""Bench: Lighthouse (desktop preset) on the summary page and a fit page, first and second view.

    .venv/bin/python bench/bench_pages.py [--root /tmp/calib-bench/pages] [--fitid N]
    .venv/bin/python bench/bench_pages.py --url http://127.0.0.1:8000 [--fitid N]   # a running bin/serve

Without ``--url`` it starts its own local stack (``devstack.stack.prepare``: embedded PostgreSQL in
``--root`` seeded once with the demo month, moto's S3 and SQS on loopback) and ``chalice local`` on
a free loopback port. The fit page is the real calvin fit of the real 256-tile calibrator
(``devstack.demo.REAL_FITID``, five plots) unless ``--fitid`` names another; the summary page is
the week before the newest fit.

First view: an empty browser cache, the fit's plots drawn as its landing draws them
(``chalicelib.plots.prerender.draw_fit``; own stack only: the demo seeds its fits straight into the
database; ``--draw-on-view`` leaves them for the page to draw, as before plots were drawn at landing).
Then every width of every plot on the page is asked for until all are stored. Second view: the same
browser profile, its cache kept (``--disable-storage-reset``): the plot redirects and the PNGs they
lead to are cacheable, so only what is not (the HTML) should be transferred again. Debian's chromium runs headless with a fresh
profile and remote debugging on a loopback port; Lighthouse (npm, ``bin/_browser_env.sh --bench``
installs it into .local/node) connects to it. Prints performance / accessibility /
best-practices per page and view, LCP / CLS / TBT, and the bytes transferred (all, images);
writes bench/out/pages.json and the Lighthouse reports bench/out/lighthouse-*.json. For the fit
page it also prints the bytes transferred on the first and the second view and how many plot
requests (302s and PNGs) reached the network on each. ``CALIB_NODE_MODULES`` (as
``bin/_browser_env.sh`` exports it) may name another node_modules holding Lighthouse.
Targets: each score >= 95 on the second view.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
OUT = PROJECT / "bench" / "out"
NODE_MODULES = Path(os.environ.get("CALIB_NODE_MODULES") or PROJECT / ".local" / "node" / "node_modules")
sys.path.insert(0, str(PROJECT))

CATEGORIES = ("performance", "accessibility", "best-practices")
TARGET = 95
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")


def lighthouse_cli() -> Path:
    """Lighthouse's CLI, installed into .local/node first if missing."""
    cli = NODE_MODULES / "lighthouse" / "cli" / "index.js"
    if not cli.exists():
        subprocess.run(["bash", str(PROJECT / "bin" / "_browser_env.sh"), "--bench"], check=True)
    return cli


def wait_for(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.3)


def own_stack(root: Path):
    """The local stack with the demo month, and chalice local on a free port: (base URL, stop())."""
    from devstack import stack

    st, moto = stack.prepare(aws_port=stack.free_port(5300), dbname="bench_pages", data_dir=root)
    port = stack.free_port(8300)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "chalice"), "local", "--host", "127.0.0.1",
                             "--port", str(port), "--stage", "dev", "--no-autoreload"], cwd=PROJECT,
                            env={**os.environ, **st.env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/calib/health", 60, proc)

    def stop() -> None:
        stack.stop_process(proc)
        moto.stop()

    return base, stop


def draw_as_landed(fitid: int) -> str:
    """Draw every plot of the fit's observations as its landing does (this process talks to the own stack)."""
    from chalicelib.db import summary as sql
    from chalicelib.plots import prerender

    done = [prerender.draw_fit(fitid, int(o["obsid"])) for o in sql.fit_observations(fitid)]
    return ", ".join(f"obs {d.obsid}: {d.drawn} drawn, {d.stored} stored, {d.failed} failed in {d.seconds:.1f} s"
                     for d in done)


def draw_every_plot(fit_url: str) -> int:
    """Ask for every width of every plot on the fit page and wait for each: after the first view
    (whose browser may have gone on before the last plot was drawn) every plot is stored."""
    import re
    from html import unescape
    from urllib.parse import urljoin

    with urllib.request.urlopen(fit_url, timeout=120) as r:
        page = r.read().decode()
    urls = {urljoin(fit_url, unescape(u)) for srcset in re.findall(r'srcset="([^"]+)"', page)
            for u in (c.rsplit(" ", 1)[0] for c in srcset.split(", "))}
    for url in sorted(urls):
        with urllib.request.urlopen(url, timeout=300) as r:
            r.read()
    return len(urls)


class Chromium:
    """Debian's chromium, headless, one profile for all runs, remote debugging on loopback."""

    def __init__(self) -> None:
        from devstack.stack import free_port

        self.profile = tempfile.mkdtemp(prefix="bench-pages-chromium-")
        self.port = free_port(9300)
        self.proc = subprocess.Popen(
            ["/usr/bin/chromium", *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
             f"--remote-debugging-port={self.port}", "--remote-debugging-address=127.0.0.1", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(f"http://127.0.0.1:{self.port}/json/version", 30, self.proc)

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.profile, ignore_errors=True)


def run_lighthouse(url: str, chromium: Chromium, name: str, keep_cache: bool) -> dict:
    """One Lighthouse run (desktop preset) in the shared browser; the report's numbers."""
    OUT.mkdir(parents=True, exist_ok=True)
    report = OUT / f"lighthouse-{name}.json"
    cmd = ["node", str(lighthouse_cli()), url, f"--port={chromium.port}", "--preset=desktop",
           f"--only-categories={','.join(CATEGORIES)}", "--output=json", f"--output-path={report}", "--quiet"]
    if keep_cache:
        cmd.append("--disable-storage-reset")
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "CHROME_PATH": "/usr/bin/chromium"})
    if out.returncode != 0:
        raise RuntimeError(f"lighthouse failed on {url}:\n{out.stderr[-3000:]}")
    lhr = json.loads(report.read_text())
    audits = lhr["audits"]
    requests = audits["network-requests"]["details"]["items"]
    images = [r for r in requests if r.get("resourceType") == "Image"]
    plots = [r for r in requests if "/calib/plot/" in r.get("url", "") or r.get("mimeType") == "image/png"]
    failing = {c: [a["id"] for a in (lhr["audits"][ref["id"]] for ref in lhr["categories"][c]["auditRefs"])
                   if a.get("score") is not None and a["score"] < 0.9 and a.get("scoreDisplayMode") in
                   ("binary", "numeric", "metricSavings")] for c in CATEGORIES}
    return {
        "url": url,
        "scores": {c: round(100 * (lhr["categories"][c]["score"] or 0)) for c in CATEGORIES},
        "lcp_ms": round(audits["largest-contentful-paint"]["numericValue"]),
        "cls": round(audits["cumulative-layout-shift"]["numericValue"], 3),
        "tbt_ms": round(audits["total-blocking-time"]["numericValue"]),
        "transferred_bytes": int(sum(r.get("transferSize") or 0 for r in requests)),
        "image_bytes": int(sum(r.get("transferSize") or 0 for r in images)),
        "images": len(images),
        "plot_requests": len(plots),
        "plot_requests_on_network": sum(1 for r in plots if (r.get("transferSize") or 0) > 0),
        "plot_bytes": int(sum(r.get("transferSize") or 0 for r in plots)),
        "requests": len(requests),
        "below_0.9": failing,
        "run_s": round(time.perf_counter() - t, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="base URL of a running service (bin/serve): http://127.0.0.1:8000")
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "calib-bench" / "pages",
                    help="own stack: where its database is kept (reused)")
    ap.add_argument("--fitid", type=int, default=None, help="the fit page to measure (default: the real fit)")
    ap.add_argument("--draw-on-view", action="store_true",
                    help="own stack: leave the fit's plots for its first view to draw (not drawn as at landing)")
    args = ap.parse_args(argv)

    from devstack import demo

    lighthouse_cli()
    stop = None
    if args.url:
        base = args.url.rstrip("/")
        with urllib.request.urlopen(base + "/calib/summary", timeout=30) as r:
            r.read()
        summary_url = base + "/calib/summary"
    else:
        base, stop = own_stack(args.root)
        from devstack import stack

        summary_url = base + "/calib/summary" + stack.summary_range()
    fitid = args.fitid or demo.REAL_FITID
    fit_url = f"{base}/calib/fit?fitid={fitid}"
    drawn_at_landing = not args.url and not args.draw_on_view
    if drawn_at_landing:
        print(f"[bench] drawing fit {fitid}'s plots as its landing would: {draw_as_landed(fitid)}", flush=True)
    chromium = None
    results: dict[str, dict] = {}
    try:
        chromium = Chromium()
        for page, url in (("summary", summary_url), ("fit", fit_url)):
            for view, keep in (("first", False), ("second", True)):
                if page == "fit" and view == "second":
                    print(f"[bench] {draw_every_plot(fit_url)} plot URLs answered: all drawn", flush=True)
                print(f"[bench] lighthouse: {page} page, {view} view ...", flush=True)
                results[f"{page}/{view}"] = run_lighthouse(url, chromium, f"{page}-{view}", keep)
    finally:
        if chromium is not None:
            chromium.close()
        if stop is not None:
            stop()
    OUT.mkdir(parents=True, exist_ok=True)
    record = {"fitid": fitid, "own_stack": not args.url, "drawn_at_landing": drawn_at_landing,
              "load_average": os.getloadavg(), "results": results,
              "chromium": subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True,
                                         text=True).stdout.strip()}
    (OUT / "pages.json").write_text(json.dumps(record, indent=1))
    _report(record)
    return 0


def _report(r: dict) -> None:
    print(f"\n{r['chromium']}, Lighthouse desktop preset; fit page: fit {r['fitid']}"
          + ((" (plots drawn as at landing)" if r.get("drawn_at_landing") else " (the first view draws its plots)")
             if r["own_stack"] else "")
          + f"; load average {', '.join(f'{x:.1f}' for x in r['load_average'])}")
    print(f"{'page / view':16} {'perf':>5} {'a11y':>5} {'b-p':>5} {'LCP ms':>8} {'CLS':>6} {'TBT ms':>7}"
          f" {'transferred':>12} {'images':>14}")
    for key, x in r["results"].items():
        s = x["scores"]
        ok = "ok" if key.endswith("second") and min(s.values()) >= TARGET else (
            "" if key.endswith("first") else "UNDER")
        print(f"{key:16} {s['performance']:>5} {s['accessibility']:>5} {s['best-practices']:>5} {x['lcp_ms']:>8}"
              f" {x['cls']:>6} {x['tbt_ms']:>7} {x['transferred_bytes'] / 1024:>9.0f} kB"
              f" {x['images']:>3} / {x['image_bytes'] / 1024:>5.0f} kB  {ok}")
        below = {c: ids for c, ids in x["below_0.9"].items() if ids}
        if below:
            print(f"{'':16} below 0.9: {below}")
    views = [(v, r["results"].get(f"fit/{v}")) for v in ("first", "second")]
    print("fit page transferred: " + "; ".join(
        f"{v} view {x['transferred_bytes'] / 1024:.0f} kB ({x['requests']} requests; plot redirects and PNGs "
        f"{x['plot_requests_on_network']} of {x['plot_requests']} on the network, {x['plot_bytes'] / 1024:.0f} kB)"
        for v, x in views if x))
    print(f"target: every score >= {TARGET} on the second view")


if __name__ == "__main__":
    sys.exit(main())
