"""Time POST /calib/grafana/query for one receiver over 30 days and over 1 year of demo data.

Builds its own PostgreSQL (pgserver, in a temp directory unless ``--datadir`` names one to keep and
reuse), migrates it, seeds ``--days`` of ``devstack.demo`` data (default 365, 256 tiles), then runs
the query route through the Chalice test client as Grafana would call it (whole request object,
builder-mode payload, maxDataPoints) and prints a table: per range and style, the rows read, frames
and points answered, the answer's size, and the route's and the SQL's time (median and max of
``--repeat`` runs after one warm-up). Target: under 100 ms for 30 days.

    .venv/bin/python bench/bench_grafana.py [--days 365] [--repeat 9] [--datadir DIR] [--rx N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.benchdb import seed, start_database  # noqa: E402

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mwa-calib-bench")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MWACalibBench")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")

DAY_MS = 86_400_000
STYLES = ("full", "Y-X", "tilemean", "recmean", "quality")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def body(rx: str, style: str, frm: int, to: int, max_points: int) -> dict:
    return {
        "app": "dashboard", "requestId": "Q1", "timezone": "browser", "panelId": 1,
        "range": {"from": iso(frm), "to": iso(to), "raw": {"from": "now-30d", "to": "now"}},
        "interval": "30m", "intervalMs": max(1, (to - frm) // max_points), "maxDataPoints": max_points,
        "scopedVars": {}, "rangeRaw": {"from": "now-30d", "to": "now"}, "adhocFilters": [],
        "targets": [{"datasource": {"type": "simpod-json-datasource", "uid": "mwa-calib"}, "editorMode": "builder",
                     "refId": "A", "target": rx, "hide": False,
                     "payload": {"channel": "ANY", "source": "ANY", "style": style, "clip": "None"}}],
    }


def timed(fn, repeat: int) -> tuple[list[float], object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, result


def run(repeat: int, rx_number: int | None, max_points: int) -> list[dict]:
    from chalice.test import Client

    from app import app
    from chalicelib import db
    from chalicelib.db import grafana as sql
    from chalicelib.grafana import timerange as tr
    from chalicelib.grafana import request as rq

    receivers = sql.receivers()
    rx = rx_number if rx_number is not None else receivers[len(receivers) // 2]
    hi = db.query("SELECT max(obsid) AS hi, min(obsid) AS lo FROM calibration_fits")[0]
    end_ms = tr.obsid_ms(hi["hi"]) + 1000
    first_ms = tr.obsid_ms(hi["lo"])
    ranges = [("30 days", end_ms - 30 * DAY_MS), ("1 year", max(first_ms, end_ms - 365 * DAY_MS))]
    out = []
    with Client(app) as client:
        for label, frm in ranges:
            rng = tr.TimeRange(frm, end_ms)
            fits = db.query("SELECT count(*) AS n FROM calibration_fits WHERE obsid BETWEEN :lo AND :hi",
                            {"lo": rng.obsid_low, "hi": rng.obsid_high})[0]["n"]
            for style in STYLES:
                payload = json.dumps(body(rq.receiver_name(rx), style, frm, end_ms, max_points))

                def call():
                    r = client.http.post("/calib/grafana/query", body=payload,
                                         headers={"Content-Type": "application/json"})
                    assert r.status_code == 200, r.body[:300]
                    return r.body

                route_ms, answer = timed(call, repeat)
                cols = sql.QUALITY if style == "quality" else sql.DELAYS
                sql_ms, rows = timed(lambda: sql.points(rx, rng.obsid_low, rng.obsid_high, cols), repeat)
                frames = json.loads(answer)
                out.append({
                    "range": label, "style": style, "rx": rq.receiver_name(rx), "fits": fits, "rows": len(rows[0]),
                    "frames": len(frames), "points": sum(len(f["data"]["values"][0]) for f in frames),
                    "kb": len(answer) / 1024, "median": statistics.median(route_ms), "max": max(route_ms),
                    "sql": statistics.median(sql_ms),
                })
    return out


def table(results: list[dict], max_points: int) -> str:
    head = (f"{'range':<8} {'receiver':<8} {'style':<9} {'fits':>6} {'rows':>7} {'frames':>6} {'points':>7} "
            f"{'KB':>7} {'route ms (median)':>18} {'max':>7} {'SQL ms':>7}")
    lines = [f"POST /calib/grafana/query, maxDataPoints={max_points}", head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['range']:<8} {r['rx']:<8} {r['style']:<9} {r['fits']:>6} {r['rows']:>7} {r['frames']:>6} "
                     f"{r['points']:>7} {r['kb']:>7.1f} {r['median']:>18.1f} {r['max']:>7.1f} {r['sql']:>7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365, help="days of demo data to seed (default 365)")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--rx", type=int, default=None, help="receiver number (default: a middle one)")
    parser.add_argument("--max-points", type=int, default=1000, help="maxDataPoints sent (Grafana: ~panel width)")
    parser.add_argument("--datadir", type=Path, default=None, help="keep the database here (reused next time)")
    args = parser.parse_args(argv)

    tmp = None
    if args.datadir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-grafana-")
        datadir = Path(tmp.name) / "pg"
    else:
        datadir = args.datadir
    srv = start_database(datadir)
    try:
        seed(args.days)
        results = run(args.repeat, args.rx, args.max_points)
        print(table(results, args.max_points))
        worst_30 = max(r["median"] for r in results if r["range"] == "30 days")
        print(f"\n30 days: slowest style median {worst_30:.1f} ms (target < 100 ms): "
              f"{'OK' if worst_30 < 100 else 'OVER TARGET'}")
    finally:
        from chalicelib import db

        db.close()
        if tmp is not None:
            srv.cleanup()
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
