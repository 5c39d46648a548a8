"""Bench: drawing a fit's plots at landing -- what it adds to the S3-event function, and what a new fit makes stale.

    nice .venv/bin/python bench/bench_landing_plots.py [--root /tmp/calib-bench/landing-plots] [--days 30] [--runs 3]

1. Landing: the real 144-tile fit of 1369821496 (../shared/fixtures/mwa) lands by manifest through
   on_cal_file (in-process moto S3), as in Lambda: the ingest's own seconds (read, fit, write,
   callbacks), the drawing's (six kinds, every width), the whole handler, and the process's peak
   resident memory. Each run is a new fit id.
2. Drawing a 256-tile fit: the demo's real calvin fit (``devstack.demo.REAL_FITID``), its six plots
   drawn as at landing (``chalicelib.plots.prerender.draw_fit``) from an empty bucket: seconds per kind.
3. Window plots a new fit makes stale: timediff and gaintimes (7 days) and xydiff (30 days) of a fit
   of observation o depend on every fit of an observation in [o - window, o]. Replaying the demo's
   fits in the order they ran (their fit ids as times), a landing of a fit of observation x changes the key of the
   window plots of every fit already landed with an observation in [x, x + window]. Printed: how many
   plots per landing (mean, p95, max, total) and what redrawing them at landing would cost, at the
   measured seconds per kind.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench import benchdb  # noqa: E402 - sets the powertools environment first

CAL = 1369821496
FITID0 = 1_690_000_000_000_000
WINDOW_KINDS = ("timediff", "gaintimes", "xydiff")


def _aws() -> object:
    """moto's in-process S3 with the calibration and products buckets; the service pointed at them."""
    from moto import mock_aws

    os.environ.update({"CALIB_CAL_BUCKET": "bench-cal", "CALIB_PRODUCTS_BUCKET": "bench-products",
                       "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "ap-southeast-2", "AWS_REGION": "ap-southeast-2"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    mock = mock_aws()
    mock.start()
    import boto3

    from chalicelib import storage

    storage.reset_clients()
    s3 = boto3.client("s3", region_name="ap-southeast-2")
    for bucket in ("bench-cal", "bench-products"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
    return mock


def _land(fitid: int) -> dict:
    """Upload the real fit and its manifest; run on_cal_file on the manifest's event; its report and seconds."""
    import boto3

    from app import app
    from chalicelib.ingest import layout
    from devstack import demo

    s3 = boto3.client("s3", region_name="ap-southeast-2")
    folder = demo.fixtures_dir() / str(CAL)
    solutions = sorted(folder.glob(f"hyp_soln_{CAL}_ch*_solutions.fits"))
    metafits = folder / f"{CAL}_metafits.fits"
    assert len(solutions) == 24 and metafits.exists(), f"the real fit's files are not in {folder}"
    prefix = layout.fit_prefix(CAL, fitid)
    for p in (metafits, *solutions):
        s3.put_object(Bucket="bench-cal", Key=prefix + p.name, Body=p.read_bytes())
    key = layout.manifest_key(CAL, fitid)
    s3.put_object(Bucket="bench-cal", Key=key, Body=json.dumps(
        {"solutions": [p.name for p in solutions], "metafits": metafits.name, "creator": "calvin"}).encode())
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": "ap-southeast-2",
                          "eventTime": "2026-01-01T00:00:00.000Z",
                          "s3": {"bucket": {"name": "bench-cal"}, "object": {"key": key, "size": 100}}}]}
    t0 = time.perf_counter()
    [report] = app.handler_map["on_cal_file"](event, None)
    report["handler_s"] = time.perf_counter() - t0
    assert report["ingest"]["written"] and report["plots"]["failed"] == 0, report
    return report


def _draw_256(fitid: int) -> dict[str, float]:
    """Seconds to draw each kind of the demo's 256-tile fit from scratch (every width stored)."""
    from chalicelib.db import summary as sql
    from chalicelib.plots import KINDS, prerender

    [obs] = sql.fit_observations(fitid)
    out = {}
    for kind in KINDS:
        drawn = prerender.draw_fit(fitid, int(obs["obsid"]), kinds=(kind,))
        assert drawn.drawn == 1, drawn
        out[kind] = drawn.seconds
    return out


def _stale_per_landing() -> dict[str, list[int]]:
    """For every fit in run order: how many window plots of fits landed before it its landing makes stale, per kind."""
    from chalicelib import db, gpstime
    from chalicelib.plots import service

    fits = sorted(((int(r["fitid"]), int(r["obsid"])) for r in db.query("SELECT fitid, obsid FROM calibration_fits")),
                  key=lambda f: (gpstime.fitid_seconds(f[0]), f[1]))  # when each ran (ids in s or µs)
    out: dict[str, list[int]] = {}
    for kind in WINDOW_KINDS:
        w = service.window_of(kind)
        counts = []
        for i, (_, x) in enumerate(fits):
            counts.append(sum(1 for _, o in fits[:i] if x <= o <= x + w))
        out[kind] = counts
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("/tmp/calib-bench/landing-plots"))
    ap.add_argument("--days", type=int, default=30, help="demo days seeded (reused when present)")
    ap.add_argument("--runs", type=int, default=3, help="landings of the real fit")
    args = ap.parse_args(argv)

    benchdb.start_database(benchdb.database_dir(args.root, args.days), name="bench_landing_plots")
    benchdb.seed(args.days)
    from chalicelib import db
    from devstack import demo

    with db.transaction() as tx:  # earlier runs' landings of the real fit
        for table in ("calibration_model_error", "calibration_fit_solution_file", "calibration_fit_file",
                      "calibration_solutions", "calibration_fits"):
            tx.run(f"DELETE FROM {table} WHERE obsid = :o AND fitid >= :f", {"o": CAL, "f": FITID0})
    stale = _stale_per_landing()
    mock = _aws()
    try:
        landings = [_land(FITID0 + run) for run in range(args.runs)]
        draw = _draw_256(demo.REAL_FITID)
    finally:
        mock.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    med = statistics.median
    print(f"\nload average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.runs} landings")
    print(f"{'landing of the 144-tile fit (median of runs)':48} {'seconds':>8}")
    print(f"{'  ingest (read, fit, write, callbacks)':48} {med(r['ingest']['seconds'] for r in landings):>8.2f}")
    print(f"{'  drawing six kinds x 3 widths':48} {med(r['plots']['seconds'] for r in landings):>8.2f}")
    print(f"{'  the whole on_cal_file handler':48} {med(r['handler_s'] for r in landings):>8.2f}"
          f"   (max {max(r['handler_s'] for r in landings):.2f})")
    print(f"{'  peak resident memory of this process':48} {peak_mb:>8.0f} MB")
    print(f"\n256-tile fit {demo.REAL_FITID}, drawn as at landing: "
          + ", ".join(f"{k} {s:.2f} s" for k, s in draw.items()) + f"; total {sum(draw.values()):.2f} s")
    n = len(next(iter(stale.values())))
    print(f"\nwindow plots a landing makes stale ({n} demo fits replayed in run order):")
    cost = 0.0
    for kind, counts in stale.items():
        each = draw[kind]
        cost += sum(counts) * each
        print(f"  {kind:10} mean {statistics.fmean(counts):5.2f}  p95 {benchdb.percentile(counts, 95):3}  "
              f"max {max(counts):3}  total {sum(counts):5}  (redrawn at {each:.2f} s each: "
              f"{statistics.fmean(counts) * each:.1f} s per landing on average, {max(counts) * each:.1f} s at most)")
    print(f"  all three: {cost / n:.1f} s per landing on average; {cost / 60:.1f} min of drawing for the {n} fits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
