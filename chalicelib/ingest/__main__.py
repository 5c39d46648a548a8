"""Ingest hyperdrive solution files from disk into the database named by CALIB_DB_* (engineers, the demo).

    python -m chalicelib.ingest --metafits 1369821496_metafits.fits [--fitid N] [--creator NAME] \\
        [--code-version TEXT] [--notify] hyp_soln_1369821496_ch*_solutions.fits

Reads the files (progress bar), fits them (:mod:`chalicelib.ingest.fit`) and writes the
calibrator observation (if new), the fit and its rows in one transaction
(:func:`chalicelib.ingest.store.store_fit`), like the S3 ingest but without a bucket (so no
``calibration_fit_file`` row). ``--fitid`` defaults to now in Unix microseconds (the current
convention), so each run without it is a new fit; with it, a second run writes nothing.
``--notify`` also finishes the calibrator's open requests and sends their callbacks, as a landed
fit does. Prints the fit id and row counts. Exit status: 0 written (or already there), 1 the
files cannot be ingested, 2 the database failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chalicelib.ingest", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("solutions", nargs="+", type=Path, metavar="SOLUTION_FILES",
                   help="hyperdrive FITS solution files of one calibrator (per coarse channel or per band)")
    p.add_argument("--metafits", required=True, type=Path, help="the calibrator's metafits file")
    p.add_argument("--fitid", type=int, default=None,
                   help="the fit id (default: now in Unix microseconds); an existing (fitid, obsid) writes nothing")
    p.add_argument("--creator", default=None, help="calibration_fits.creator (default: mwa-calib-ingest)")
    p.add_argument("--code-version", default=None, help="calibration_fits.code_version (default: hyperdrive SOFTWARE)")
    p.add_argument("--notify", action="store_true",
                   help="finish the calibrator's open requests and send their callbacks, as a landed fit does")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool = True, stream: TextIO | None = None
                 ) -> Iterator[Callable[[object], None]]:
    """An ``update(item)`` callable: a tqdm bar when tqdm is installed (dev dependency), else plain lines."""
    out = stream or sys.stderr
    if not enabled:
        yield lambda _item: None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        done = [0]

        def plain(_item: object) -> None:
            done[0] += 1
            print(f"{desc}: {done[0]}/{total}", file=out, flush=True)

        yield plain
        return
    with tqdm(total=total, desc=desc, unit="file", file=out, leave=True) as bar:
        yield lambda _item: bar.update(1)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    out = stdout or sys.stdout
    from pg8000.exceptions import DatabaseError, InterfaceError

    from chalicelib import gpstime
    from chalicelib.errors import DatabaseUnavailable
    from chalicelib.formats.metafits import observation_from_metafits, read_metafits
    from chalicelib.ingest.fit_inputs import load_fit_inputs
    from chalicelib.ingest.fitting import fit_result
    from chalicelib.ingest.modelerror import line_model_error
    from chalicelib.ingest.store import fit_record, store_fit

    missing = [str(p) for p in (args.metafits, *args.solutions) if not p.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 1
    fitid = args.fitid if args.fitid is not None else int(gpstime.now().timestamp() * 1_000_000)
    t0 = time.perf_counter()
    try:
        info = read_metafits(args.metafits)
        with progress_bar(len(args.solutions), "reading solutions", not args.no_progress) as update:
            inputs = load_fit_inputs(sorted(args.solutions), info, progress=update)
        result = fit_result(inputs)
        rows = result.rows()
        error = line_model_error(inputs.jones, inputs.weights > 0, inputs.freqs_hz, inputs.tile_ids,
                                 result.reference_tile_id, rows)
    except Exception as exc:  # noqa: BLE001 - a command-line tool: say what is wrong, no trace
        print(f"error: cannot ingest these files: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    t_fit = time.perf_counter() - t0
    fit = fit_record(inputs.hyperdrive_header, fitid=fitid, obsid=info.obsid, creator=args.creator,
                     code_version=args.code_version)
    try:
        stored = store_fit(fit, rows, observation_from_metafits(info), model_error=error)
    except (DatabaseUnavailable, DatabaseError, InterfaceError, OSError) as exc:
        print(f"error: the database failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    t_all = time.perf_counter() - t0
    n_nan = int(result.flagged.sum())
    if not stored.written:
        print(f"fit {fitid} of observation {info.obsid} is already in the database: nothing written", file=out)
    else:
        print(f"fit {fitid} of observation {info.obsid}: {stored.rows} rows written "
              f"({stored.rows - stored.nan_rows} solved, {stored.nan_rows} all-NaN), reference tile "
              f"{result.reference_tile_id}" + ("; observation added" if stored.observation_inserted else ""),
              file=out)
        print(f"read + fit {t_fit:.2f} s, total {t_all:.2f} s", file=out)
    if args.notify:
        from chalicelib.ingest.landing import success_message
        from chalicelib.calrequests import callbacks

        report = callbacks.fit_finished(info.obsid, fitid, True,
                                        success_message(fitid, info.obsid, len(rows), n_nan), fit.fit_time)
        print(f"requests finished: {len(report['requests'])}, callbacks sent: {len(report['callbacks'])}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
