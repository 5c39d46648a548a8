"""Record the solution files of fits already in the database, from one listing of the calibration bucket.

    python -m chalicelib.ingest.backfill [--bucket NAME] [--force]

Lists ``fits/`` of the calibration bucket (``CALIB_CAL_BUCKET``) once, and for every fit in
``calibration_fits`` whose files are not recorded yet (``--force``: all of them again) records in
``calibration_fit_solution_file`` each of its hyperdrive solution files with the coarse channels it
holds: the files its ``manifest.json`` lists when it has one (an ingested fit), else its
``<cal_id>_solutions.fits`` (a site-pipeline fit). Fits not in the database and other files are
left alone. Prints what it recorded. Exit status 0, or 2 when S3 or the database failed.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from chalicelib import storage
from chalicelib.config import settings
from chalicelib.db import solution_files as queries
from chalicelib.errors import ServiceError
from chalicelib.ingest import layout
from chalicelib.ingest.solution_files import describe_keys


@dataclass
class BackfillReport:
    """What one backfill run found and recorded."""

    listed: int = 0  # keys under fits/
    fits_recorded: int = 0
    files_recorded: int = 0
    skipped_unknown: int = 0  # fit prefixes of fits not in calibration_fits
    skipped_recorded: int = 0  # fits whose files were recorded already
    problems: list[str] = field(default_factory=list)  # fits with missing or unreadable files


def fit_solution_keys(cal_id: int, fitid: int, names: set[str], manifest: bytes | None) -> list[str]:
    """The keys of a fit's solution files: those its manifest lists (and the bucket has), else ``<cal_id>_solutions.fits``."""
    prefix = layout.fit_prefix(cal_id, fitid)
    if manifest is not None:
        listed = layout.Manifest.parse(manifest).solutions
        return [prefix + n for n in listed if n in names]
    site = layout.solutions_key(cal_id, fitid)
    return [site] if site[len(prefix):] in names else []


def backfill(bucket: str | None = None, *, force: bool = False) -> BackfillReport:
    """Record the solution files of every known fit found in one listing of the bucket (see the module docstring)."""
    bucket = bucket or settings().cal_bucket
    report = BackfillReport()
    names: dict[tuple[int, int], set[str]] = defaultdict(set)
    for key, _size in storage.list_objects(bucket, layout.PREFIX):
        report.listed += 1
        parsed = layout.parse_key(key)
        if parsed is not None:
            names[(parsed.fitid, parsed.cal_id)].add(key[len(parsed.prefix):])
    known, with_files = queries.fit_state()
    for (fitid, cal_id), present in sorted(names.items()):
        if (fitid, cal_id) not in known:
            report.skipped_unknown += 1
            continue
        if (fitid, cal_id) in with_files and not force:
            report.skipped_recorded += 1
            continue
        manifest = None
        if layout.MANIFEST_NAME in present:
            manifest = storage.get_object(bucket, layout.manifest_key(cal_id, fitid))
        try:
            keys = fit_solution_keys(cal_id, fitid, present, manifest)
        except layout.LandingError as exc:
            report.problems.append(f"fit {fitid} of {cal_id}: {exc}")
            continue
        if not keys:
            continue
        described, bad = describe_keys(bucket, keys)
        if bad:
            report.problems.append(f"fit {fitid} of {cal_id}: not recorded: {', '.join(bad)}")
        if described:
            report.files_recorded += queries.record_now(fitid, cal_id, described)
            report.fits_recorded += 1
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: run the backfill, print the report; 0 done, 2 S3 or the database failed."""
    p = argparse.ArgumentParser(prog="python -m chalicelib.ingest.backfill", description=__doc__.split("\n\n")[0])
    p.add_argument("--bucket", default=None, help="the calibration bucket (default: CALIB_CAL_BUCKET)")
    p.add_argument("--force", action="store_true", help="record the files of fits that have some recorded already")
    args = p.parse_args(argv)
    try:
        r = backfill(args.bucket, force=args.force)
    except ServiceError as exc:
        print(f"backfill failed: {exc.message}", file=sys.stderr)
        return 2
    print(f"listed {r.listed} keys; recorded {r.files_recorded} solution files of {r.fits_recorded} fits; "
          f"skipped {r.skipped_recorded} fits already recorded and {r.skipped_unknown} fits not in the database")
    for problem in r.problems:
        print(problem, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
