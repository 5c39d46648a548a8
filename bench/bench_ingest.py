"""Time the ingest of a real hyperdrive fit: read 24 solution files + metafits, fit, make rows.

Usage: python bench/bench_ingest.py [--runs N] [--fixtures DIR]
Default fixture: ../shared/fixtures/mwa/1369821496 beside the project root (obs 1369821496,
144 tiles x 768 chanblocks). Prints the median (and min/max) of N runs per stage.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from chalicelib.ingest.fit import fit_result, load_fit_inputs  # noqa: E402

OBSID = "1369821496"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fixtures", type=Path, default=PROJECT_ROOT.parent / "shared" / "fixtures" / "mwa" / OBSID)
    args = parser.parse_args()

    solutions = sorted(args.fixtures.glob(f"hyp_soln_{OBSID}_ch*_solutions.fits"))
    metafits = args.fixtures / f"{OBSID}_metafits.fits"
    if not solutions or not metafits.exists():
        sys.exit(f"fixture files not found in {args.fixtures}")

    stages = ("load (24 files + metafits)", "fit (phase + gains)", "rows", "total")
    times: dict[str, list[float]] = {stage: [] for stage in stages}
    rows = []
    inputs = None
    for _ in range(args.runs):
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
        times["total"].append(t3 - t0)

    assert inputs is not None
    n_tiles, n_chan, _ = inputs.jones.shape
    print(f"obs {OBSID}: {len(solutions)} files, {n_tiles} tiles x {n_chan} chanblocks -> {len(rows)} rows; "
          f"{args.runs} runs")
    print(f"{'stage':<28} {'median s':>9} {'min s':>9} {'max s':>9}")
    print("-" * 58)
    for stage, values in times.items():
        print(f"{stage:<28} {statistics.median(values):>9.3f} {min(values):>9.3f} {max(values):>9.3f}")


if __name__ == "__main__":
    main()
