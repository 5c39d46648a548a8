"""Bench: the summary page (7 days, 1 year of fits), the fit page, and each plot uncached and cached.

    .venv/bin/python bench/bench_summary.py [--days 365] [--tiles 256] [--repeat 15] [--keep]

Starts its own embedded PostgreSQL (pgserver, in a temporary directory unless --pgdata is given,
which is reused across runs) and moto's in-process S3, seeds ``devstack.demo.generate(days)``,
then times requests through Chalice's test client (routing, middleware, database, template, S3
calls included; the HTTP hop is not). Targets: summary page < 300 ms for 7 days; a plot < 2 s
uncached and < 50 ms cached. Writes the numbers to bench/out/summary.json and the rendered plots
to bench/out/*.png. Times are medians (and p90) of --repeat runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
OUT = PROJECT / "bench" / "out"
sys.path.insert(0, str(PROJECT))

TARGETS_MS = {"summary_7d": 300, "plot_uncached": 2000, "plot_cached": 50}


def _env(pgdata: Path) -> None:
    from bench.benchdb import start_database

    _env.server = start_database(pgdata, "bench_summary")  # keep it alive
    os.environ.update({
        "CALIB_PRODUCTS_BUCKET": "bench-products", "CALIB_CAL_BUCKET": "bench-cal",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "ap-southeast-2",
        "AWS_REGION": "ap-southeast-2", "POWERTOOLS_SERVICE_NAME": "mwa-calib-bench",
        "POWERTOOLS_METRICS_NAMESPACE": "MWACalibBench", "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
        "MPLCONFIGDIR": str(Path(tempfile.gettempdir()) / "mwa-calib-mpl"),
    })
    os.environ.pop("AWS_ENDPOINT_URL", None)


def _stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"median_ms": round(statistics.median(s) * 1000, 1),
            "p90_ms": round(s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))] * 1000, 1),
            "n": len(s)}


def _time(fn, repeat: int) -> dict[str, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return _stats(samples)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--tiles", type=int, default=None, help="default 256 (the demo's real array)")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--plot-repeat", type=int, default=3)
    ap.add_argument("--pgdata", type=Path, default=None, help="reuse this PostgreSQL data directory")
    args = ap.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="bench-summary-")
    _env(args.pgdata or Path(tmp.name) / "pg")

    from moto import mock_aws

    from chalicelib import db, migrate, storage
    from devstack import demo

    migrate.apply()
    want = f"days={args.days} tiles={args.tiles} seed={demo.DEFAULT_SEED}"
    db.execute("CREATE TABLE IF NOT EXISTS bench_meta (what text)")
    have = db.query("SELECT what FROM bench_meta")
    data = demo.generate(days=args.days, n_tiles=args.tiles)
    if not have or have[0]["what"] != want:
        print(f"[bench] seeding {want} ...", flush=True)
        t = time.perf_counter()
        db.execute("TRUNCATE calibration_solutions, calibration_fits, observation_tile, rf_stream,"
                   " schedule_metadata, mwa_setting CASCADE")
        counts = demo.seed_database(data)
        db.execute("DELETE FROM bench_meta")
        db.execute("INSERT INTO bench_meta VALUES (:w)", {"w": want})
        print(f"[bench] seeded in {time.perf_counter() - t:.0f} s: {counts}", flush=True)
    db.execute("ANALYZE")

    from chalice.test import Client

    from app import app
    from chalicelib.plots import KINDS, service

    results: dict[str, object] = {"data": want, "fits": len(data.fits), "observations": len(data.observations)}
    end = data.end_gps
    with mock_aws():
        import boto3

        storage.reset_clients()
        boto3.client("s3", region_name="ap-southeast-2").create_bucket(
            Bucket="bench-products", CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
        with Client(app) as client:
            def page(start: int, extra: str = "") -> None:
                r = client.http.get(f"/calib/summary?start={start}&end={end}{extra}")
                assert r.status_code == 200, r.status_code

            year = end - min(365, args.days) * 86400
            results["summary_7d"] = _time(lambda: page(end - 7 * 86400), args.repeat)
            results["summary_1y"] = _time(lambda: page(year), args.repeat)
            results["summary_1y_last_page"] = _time(lambda: page(year, "&page=26"), args.repeat)
            results["summary_1y_1000"] = _time(lambda: page(year, "&per_page=1000"), args.repeat)
            results["summary_7d_fits"] = db.query(
                "SELECT count(DISTINCT fitid) AS n FROM calibration_fits WHERE obsid BETWEEN :a AND :b",
                {"a": end - 7 * 86400, "b": end})[0]["n"]
            results["summary_1y_fits"] = db.query(
                "SELECT count(DISTINCT fitid) AS n FROM calibration_fits WHERE obsid BETWEEN :a AND :b",
                {"a": end - 365 * 86400, "b": end})[0]["n"]

            # the newest fit of a full-array calibrator with a week of history before it
            fit = db.query(
                "SELECT f.fitid, f.obsid FROM calibration_fits f"
                " WHERE (SELECT count(*) FROM calibration_solutions s WHERE s.fitid = f.fitid AND s.obsid = f.obsid)"
                "       = (SELECT max(c) FROM (SELECT count(*) AS c FROM observation_tile GROUP BY obsid) m)"
                " AND (SELECT count(*) FROM calibration_solutions s WHERE s.fitid = f.fitid AND s.obsid = f.obsid"
                "      AND s.x_delay_m = s.x_delay_m) > 0"
                " ORDER BY f.obsid DESC, f.fitid DESC LIMIT 1")[0]
            fitid, obsid = int(fit["fitid"]), int(fit["obsid"])
            results["fit"] = {"fitid": fitid, "obsid": obsid}
            results["fit_page"] = _time(lambda: client.http.get(f"/calib/fit?fitid={fitid}"), args.repeat)

            # first plot in a fresh process pays the matplotlib import (~0.5-1 s); measured once
            t = time.perf_counter()
            import matplotlib.figure  # noqa: F401

            results["matplotlib_import_ms"] = round((time.perf_counter() - t) * 1000, 1)
            OUT.mkdir(parents=True, exist_ok=True)
            plots: dict[str, object] = {}
            bucket = "bench-products"
            for kind in KINDS:
                ctx = service.context(kind, fitid, obsid)
                key = service.cache_key(kind, ctx)
                phases = []
                uncached = []
                for _ in range(args.plot_repeat):
                    storage.delete_prefix(bucket, key)
                    t0 = time.perf_counter()
                    r = client.http.get(f"/calib/plot/{kind}?fitid={fitid}&obsid={obsid}")
                    uncached.append(time.perf_counter() - t0)
                    assert r.status_code == 302, (kind, r.status_code, r.body)
                    # where the time goes: fetch+compute vs render
                    t1 = time.perf_counter()
                    data_ = service.plot_data(kind, ctx)
                    t2 = time.perf_counter()
                    png = service.render(kind, data_)
                    t3 = time.perf_counter()
                    phases.append((t2 - t1, t3 - t2))
                (OUT / f"{kind}.png").write_bytes(png)
                cached = _time(lambda k=kind: client.http.get(f"/calib/plot/{k}?fitid={fitid}&obsid={obsid}"),
                               args.repeat)
                plots[kind] = {"uncached": _stats(uncached), "cached": cached,
                               "data_ms": round(statistics.median(p[0] for p in phases) * 1000, 1),
                               "render_ms": round(statistics.median(p[1] for p in phases) * 1000, 1),
                               "png_bytes": len(png)}
            results["plots"] = plots
        storage.reset_clients()

    db.close()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.json").write_text(json.dumps(results, indent=2))
    _report(results)
    return 0


def _report(r: dict) -> None:
    def ok(ms: float, target: float) -> str:
        return "ok" if ms <= target else "OVER"

    print(f"\ndata: {r['data']}  ({r['fits']} fits, {r['observations']} observations)")
    s7, s1 = r["summary_7d"], r["summary_1y"]
    print(f"summary page, 7 days ({r['summary_7d_fits']} fits):  median {s7['median_ms']} ms, p90 {s7['p90_ms']} ms"
          f"  [target {TARGETS_MS['summary_7d']} ms: {ok(s7['p90_ms'], TARGETS_MS['summary_7d'])}]")
    print(f"summary page, 1 year ({r['summary_1y_fits']} fits, first page of 100): median {s1['median_ms']} ms,"
          f" p90 {s1['p90_ms']} ms")
    s1l, s1k = r["summary_1y_last_page"], r["summary_1y_1000"]
    print(f"summary page, 1 year, page 26 of 100: median {s1l['median_ms']} ms, p90 {s1l['p90_ms']} ms")
    print(f"summary page, 1 year, 1000 fits on one page: median {s1k['median_ms']} ms, p90 {s1k['p90_ms']} ms")
    fp = r["fit_page"]
    print(f"fit page {r['fit']['fitid']}: median {fp['median_ms']} ms, p90 {fp['p90_ms']} ms")
    print(f"matplotlib import (once per container): {r['matplotlib_import_ms']} ms")
    print(f"{'plot':10} {'uncached median':>16} {'max':>8} {'(data':>8} {'render)':>8} {'cached median':>14} {'p90':>7}"
          f" {'PNG':>9}")
    for kind, p in r["plots"].items():
        u, c = p["uncached"], p["cached"]
        print(f"{kind:10} {u['median_ms']:>13} ms {u['p90_ms']:>5} ms {p['data_ms']:>8} {p['render_ms']:>8}"
              f" {c['median_ms']:>11} ms {c['p90_ms']:>4} ms {p['png_bytes'] // 1024:>6} kB"
              f"  [{ok(u['p90_ms'], TARGETS_MS['plot_uncached'])}/{ok(c['p90_ms'], TARGETS_MS['plot_cached'])}]")


if __name__ == "__main__":
    sys.exit(main())
