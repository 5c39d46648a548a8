"""Time get_cal_fits and get_cal_solution in process, on demo databases of growing size.

For each size (default: 30 days and 365 days; add 1825 for five years, which takes ~6 minutes to
seed the first time, ~10 with ``--calibrators-per-day 6 10``: ~20,000 fits instead of ~12,700) a
database is kept under ``--root`` and reused. The routes run through
the Chalice test client with moto's S3 in process (moto's put of a 12.6 MB zip alone costs ~70 ms,
so the zip build is also timed on its own). Printed: median and 95th percentile of
get_cal_fits, get_cal_solution uncached (nocache=1) and cached, and the selection query alone,
for 256-tile targets with 24 channels (768 fine channels at 40 kHz); and, in the same run, the
uncached ``source=file`` answer: each target's fit gets one whole-band hyperdrive file (256 tiles x
768 chanblocks, 12.6 MB, written from its rows) in moto's calibration bucket, recorded in
``calibration_fit_solution_file`` for the run and removed after it.

    .venv/bin/python bench/bench_cal_solution.py [--days 30 365 1825] [--calibrators-per-day 6 10]
        [--n 40] [--root /tmp/calib-bench]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchdb import database_dir, percentile, seed, start_database  # noqa: E402


def targets(n: int) -> list[int]:
    """Target observations with a 256-tile layout and a candidate fit, spread over the database."""
    from chalicelib import db

    rows = db.query(
        """SELECT m.starttime FROM mwa_setting m JOIN schedule_metadata s ON s.observation_number = m.starttime
           WHERE NOT s.calibration
             AND (SELECT count(*) FROM observation_tile t WHERE t.obsid = m.starttime) = 256
           ORDER BY m.starttime""")
    obs = [r["starttime"] for r in rows]
    random.Random(1).shuffle(obs)
    return obs[: n * 3]


def whole_band_file(best) -> tuple[int, int]:
    """Write the fit as one whole-band hyperdrive file of the calibrator's tiles into bench-cal and record it."""
    from chalicelib import storage
    from chalicelib.db import selection as queries
    from chalicelib.db import solution_files
    from chalicelib.formats.hyperdrive import write_hyperdrive
    from chalicelib.ingest import layout
    from chalicelib.solutions.files import describe_bytes
    from chalicelib.solutions.rebuild import assemble

    cal, fit = best.calibrator, best.fit
    sol = assemble(queries.solution_rows(fit.fitid, cal.obsid), cal.channels, queries.observation_tiles(cal.obsid),
                   cal.channels, 40e3, (float(cal.obsid), float(cal.stoptime)), cal.obsid, fit.fitid)
    body = write_hyperdrive(sol)
    key = layout.solutions_key(cal.obsid, fit.fitid)
    storage.put_object("bench-cal", key, body)
    solution_files.record_now(fit.fitid, cal.obsid, [describe_bytes(key, body)])
    return fit.fitid, cal.obsid


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000, out


def run(days: int, root: Path, n: int, calibrators_per_day: tuple[int, int] = (4, 6)) -> dict:
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    srv = start_database(database_dir(root, days, calibrators_per_day))
    seed(days, calibrators_per_day)
    from app import app
    from chalicelib import db, storage
    from chalicelib.db import selection as queries
    from chalicelib.api.cal_solution import zip_spec
    from chalicelib.solutions import bundle
    from chalicelib.selection.rules import Criteria, window
    from chalicelib.selection.service import choose

    n_fits = db.query("SELECT count(*) AS n FROM calibration_fits")[0]["n"]
    out: dict[str, list[float]] = {"get_cal_fits": [], "uncached": [], "build": [], "cached": [],
                                   "selection query": [], "file uncached": [], "file build": []}
    recorded: list[tuple[int, int]] = []
    with mock_aws():
        storage.reset_clients()
        import os

        os.environ["CALIB_PRODUCTS_BUCKET"] = "bench-products"
        os.environ["CALIB_CAL_BUCKET"] = "bench-cal"
        for bucket in ("bench-products", "bench-cal"):
            boto3.client("s3", region_name="ap-southeast-2").create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
        with Client(app) as client:
            used = 0
            for obs in targets(n):
                if used >= n:
                    break
                ms, r = timed(lambda: client.http.get(f"/calib/get_cal_fits?obs_id={obs}"))
                if r.status_code != 200:
                    continue
                used += 1
                out["get_cal_fits"].append(ms)
                ms, r = timed(lambda: client.http.get(f"/calib/get_cal_solution?obs_id={obs}&nocache=1"))
                assert r.status_code == 302, r.body
                out["uncached"].append(ms)
                ms, r = timed(lambda: client.http.get(f"/calib/get_cal_solution?obs_id={obs}"))
                assert r.status_code == 302
                out["cached"].append(ms)
                t = queries.target(obs)
                low, high = window(t, Criteria())
                ms, _ = timed(lambda: queries.calibrators_near(obs, low, high))
                out["selection query"].append(ms)
                best = choose(obs, Criteria()).selection.best
                spec = zip_spec(obs, best, t.channels, output_format="aocal", fine_chan_khz=40, nocache=True)
                ms, _ = timed(lambda: bundle.build(spec))
                out["build"].append(ms)

                recorded.append(whole_band_file(best))
                ms, r = timed(lambda: client.http.get(f"/calib/get_cal_solution?obs_id={obs}&source=file&nocache=1"))
                assert r.status_code == 302, r.body
                out["file uncached"].append(ms)
                spec = zip_spec(obs, best, t.channels, output_format="aocal", fine_chan_khz=None, nocache=True,
                                source="file")
                ms, _ = timed(lambda: bundle.build(spec))
                out["file build"].append(ms)
    for fitid, cal in recorded:
        db.execute("DELETE FROM calibration_fit_solution_file WHERE fitid = :f AND obsid = :o", {"f": fitid, "o": cal})
    db.close()
    srv.cleanup()
    return {"days": days, "fits": n_fits, "samples": used, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, nargs="+", default=[30, 365])
    parser.add_argument("--calibrators-per-day", type=int, nargs=2, default=(4, 6), metavar=("LOW", "HIGH"),
                        help="schedule density of the demo data (6 10: ~20,000 fits in five years)")
    parser.add_argument("--n", type=int, default=40, help="targets sampled per database")
    parser.add_argument("--root", type=Path, default=Path("/tmp/calib-bench"))
    args = parser.parse_args()
    results = [run(d, args.root, args.n, tuple(args.calibrators_per_day)) for d in args.days]
    print()
    print(f"{'database':>14} {'fits':>7} {'n':>4} | {'measure':<16} {'median ms':>10} {'p95 ms':>9}")
    print("-" * 70)
    for r in results:
        for key in ("get_cal_fits", "uncached", "build", "file uncached", "file build", "cached", "selection query"):
            vals = r[key]
            if not vals:
                continue
            label = {"uncached": "get_cal_solution uncached", "cached": "get_cal_solution cached",
                     "build": "  of which: zip built (rest: S3 put)",
                     "file uncached": "source=file uncached",
                     "file build": "  of which: zip built (files fetched, read, converted)"}.get(key, key)
            print(f"{r['days']:>9} days {r['fits']:>7} {r['samples']:>4} | {label:<16} "
                  f"{statistics.median(vals):>10.1f} {percentile(vals, 95):>9.1f}")
    print("\ntargets: get_cal_fits < 20 ms; get_cal_solution uncached < 150 ms, cached < 30 ms;"
          " source=file uncached within 2x of the table's; the selection query flat in database size")


if __name__ == "__main__":
    main()
