"""Deployment package size: chalice's zip as it comes, and after the prune step, by top-level folder.

Usage: python bench/bench_package.py [--out DIR] [--top N]

Runs ``chalice package --stage prod`` (devstack.package; the dependency zip is cached in
.local/package-cache, so only the first run needs PyPI), copies the zip, prunes the copy and
prints the unzipped size of the N largest top-level folders in both, what the prune step removed
from each and why, the totals, Lambda's 250 MiB limit and the headroom left.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import zipfile
from collections import defaultdict
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from devstack import package  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "out" / "package")
    parser.add_argument("--top", type=int, default=20, help="folders listed (the rest are summed)")
    args = parser.parse_args()

    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    package.chalice_package(PROJECT_ROOT, out / "unpruned", cache=package.DEFAULT_CACHE)
    t_chalice = time.perf_counter() - t0
    (out / "pruned").mkdir()
    pruned_zip = out / "pruned" / "deployment.zip"
    shutil.copy2(out / "unpruned" / "deployment.zip", pruned_zip)
    t0 = time.perf_counter()
    report = package.prune_zip(pruned_zip)
    t_prune = time.perf_counter() - t0
    with zipfile.ZipFile(out / "unpruned" / "deployment.zip") as zf:
        assert sum(i.file_size for i in zf.infolist()) == report.total_before

    before = package.top_level_sizes(report.before)
    after = package.top_level_sizes(report.kept)
    why: dict[str, set[str]] = defaultdict(set)
    for name, reason in report.removed.items():
        why[name.split("/", 1)[0]].add(reason)

    mib = package.mib
    print(f"deployment package, stage prod (unzipped MiB; chalice package {t_chalice:.1f} s, prune {t_prune:.1f} s)")
    print(f"{'top-level folder':<44} {'chalice':>8} {'pruned':>8}  removed")
    print("-" * 90)
    shown = list(before)[:args.top]
    for top in shown:
        print(f"{top:<44} {mib(before[top]):>8} {mib(after.get(top, 0)):>8}  {', '.join(sorted(why.get(top, ()))) or '-'}")
    rest = [t for t in before if t not in shown]
    if rest:
        rest_before = sum(before[t] for t in rest)
        rest_after = sum(after.get(t, 0) for t in rest)
        reasons = sorted({r for t in rest for r in why.get(t, ())})
        print(f"{f'{len(rest)} others':<44} {mib(rest_before):>8} {mib(rest_after):>8}  {', '.join(reasons) or '-'}")
    print("-" * 90)
    limit = package.LAMBDA_UNZIPPED_LIMIT
    print(f"{'total':<44} {mib(report.total_before):>8} {mib(report.total_after):>8}")
    print(f"{'zipped (the upload)':<44} {mib((out / 'unpruned' / 'deployment.zip').stat().st_size):>8} "
          f"{mib(pruned_zip.stat().st_size):>8}")
    print(f"{'Lambda limit (unzipped)':<44} {mib(limit):>8} {mib(limit):>8}")
    print(f"{'headroom':<44} {mib(limit - report.total_before):>8} {mib(limit - report.total_after):>8}")
    print("removed by reason (MiB): " + ", ".join(f"{r} {mib(s)}" for r, s in report.removed_by_reason().items()))
    return 0 if report.total_after < package.TARGET_UNZIPPED else 1


if __name__ == "__main__":
    sys.exit(main())
