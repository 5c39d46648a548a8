"""Time the ingest of a real hyperdrive fit: read 24 solution files + metafits, fit, make rows, write them.

Usage: python bench/bench_ingest.py [--runs N] [--fixtures DIR] [--root DIR] [--no-db] [--no-landing]
Default fixture: ../shared/fixtures/mwa/1369821496 beside the project root (obs 1369821496,
144 tiles x 768 chanblocks). Prints the median (and min/max) of N runs per stage:

- load, fit, rows: the science (chalicelib.ingest.fit_inputs, .fitting), from the files on disk;
- db write: chalicelib.ingest.store.store_fit -- the calibrator observation, calibration_fits,
  144 calibration_solutions rows and calibration_fit_file in one transaction -- into an embedded
  PostgreSQL (pgserver, data in --root; each run a new fit id, the observation new in every run);
- landing: the whole S3 path as on_cal_file runs it (chalicelib.ingest.landing.ingest_manifest):
  fetch the manifest + 25 files from an in-process moto S3, read, fit, write, fit_finished.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from bench import benchdb  # noqa: E402,F401 - sets the powertools environment first
from chalicelib.ingest.fit_inputs import load_fit_inputs  # noqa: E402
from chalicelib.ingest.fitting import fit_result  # noqa: E402

OBSID = "1369821496"
CAL = int(OBSID)
FITID0 = 1_700_000_000_000_000


def _clear(cal: int) -> None:
    from chalicelib import db

    with db.transaction() as tx:
        for table, col in (("calibration_fit_file", "obsid"), ("calibration_solutions", "obsid"),
                           ("calibration_fits", "obsid"), ("mwa_setting", "starttime")):
            tx.run(f"DELETE FROM {table} WHERE {col} = :o", {"o": cal})


def _landing_run(solutions: list[Path], metafits: Path, fitid: int) -> float:
    """One manifest landing through moto S3; returns its seconds (upload excluded)."""
    import boto3

    from chalicelib.ingest import landing, layout

    s3 = boto3.client("s3", region_name="ap-southeast-2")
    prefix = layout.fit_prefix(CAL, fitid)
    for path in (metafits, *solutions):
        s3.put_object(Bucket="bench-cal", Key=prefix + path.name, Body=path.read_bytes())
    key = layout.manifest_key(CAL, fitid)
    s3.put_object(Bucket="bench-cal", Key=key, Body=json.dumps(
        {"solutions": [p.name for p in solutions], "metafits": metafits.name}).encode())
    landed = layout.LandedFit(file=layout.parse_key(key), bucket="bench-cal", event_time=None, size=None)
    t0 = time.perf_counter()
    report = landing.ingest_manifest(landed)
    elapsed = time.perf_counter() - t0
    assert report["ingest"]["written"] and report["ingest"]["rows"] == 144, report
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fixtures", type=Path, default=PROJECT_ROOT.parent / "shared" / "fixtures" / "mwa" / OBSID)
    parser.add_argument("--root", type=Path, default=Path("/tmp/calib-bench"), help="embedded PostgreSQL data")
    parser.add_argument("--no-db", action="store_true", help="the science only (no database, no landing)")
    parser.add_argument("--no-landing", action="store_true", help="skip the S3 landing stage")
    args = parser.parse_args()

    solutions = sorted(args.fixtures.glob(f"hyp_soln_{OBSID}_ch*_solutions.fits"))
    metafits = args.fixtures / f"{OBSID}_metafits.fits"
    if not solutions or not metafits.exists():
        sys.exit(f"fixture files not found in {args.fixtures}")

    srv = None
    if not args.no_db:
        from chalicelib import migrate

        srv = benchdb.start_database(args.root / "ingest", name="bench_ingest")
        migrate.apply()
        _clear(CAL)

    stages = ["load (24 files + metafits)", "fit (phase + gains)", "rows", "db write (1 transaction)", "total"]
    if args.no_db:
        stages.remove("db write (1 transaction)")
    times: dict[str, list[float]] = {stage: [] for stage in stages}
    rows = []
    inputs = None
    for run in range(args.runs):
        t0 = time.perf_counter()
        inputs = load_fit_inputs(solutions, metafits)
        t1 = time.perf_counter()
        result = fit_result(inputs)
        t2 = time.perf_counter()
        rows = result.rows()
        t3 = time.perf_counter()
        times["load (24 files + metafits)"].append(t1 - t0)
        times["fit (phase + gains)"].append(t2 - t1)
        times["rows"].append(t3 - t2)
        if not args.no_db:
            from chalicelib.formats.metafits import observation_from_metafits, read_metafits
            from chalicelib.ingest.store import fit_record, store_fit

            obs = observation_from_metafits(read_metafits(metafits))  # (timed in "load" by load_fit_inputs)
            t3 = time.perf_counter()
            stored = store_fit(fit_record(inputs.hyperdrive_header, fitid=FITID0 + run, obsid=CAL), rows, obs,
                               bucket_key=f"fits/{CAL}/{FITID0 + run}/{solutions[0].name}")
            t4 = time.perf_counter()
            assert stored.written and stored.rows == 144 and stored.nan_rows == 18, stored
            times["db write (1 transaction)"].append(t4 - t3)
            _clear(CAL)
            t3 = t4
        times["total"].append(t3 - t0)

    landing_times: list[float] = []
    if not args.no_db and not args.no_landing:
        import os

        from moto import mock_aws

        os.environ.update({"CALIB_CAL_BUCKET": "bench-cal", "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "ap-southeast-2"})
        os.environ.pop("AWS_ENDPOINT_URL", None)
        with mock_aws():
            import boto3

            from chalicelib import storage

            storage.reset_clients()
            boto3.client("s3", region_name="ap-southeast-2").create_bucket(
                Bucket="bench-cal", CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
            for run in range(args.runs):
                landing_times.append(_landing_run(solutions, metafits, FITID0 + 1000 + run))
                _clear(CAL)
            storage.reset_clients()

    assert inputs is not None
    n_tiles, n_chan, _ = inputs.jones.shape
    print(f"obs {OBSID}: {len(solutions)} files, {n_tiles} tiles x {n_chan} chanblocks -> {len(rows)} rows; "
          f"{args.runs} runs")
    print(f"{'stage':<40} {'median s':>9} {'min s':>9} {'max s':>9}")
    print("-" * 70)
    if landing_times:
        times["landing (S3 manifest -> rows + callbacks)"] = landing_times
    for stage, values in times.items():
        print(f"{stage:<40} {statistics.median(values):>9.3f} {min(values):>9.3f} {max(values):>9.3f}")
    print("target: the whole ingest under 10 s")
    if srv is not None:
        from chalicelib import db

        db.close()


if __name__ == "__main__":
    main()
