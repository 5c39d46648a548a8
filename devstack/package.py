"""Build the Lambda deployment package: ``chalice package``, then the zip again without what Lambda never runs.

    python -m devstack.package [--stage prod] [--pkg-format cloudformation|terraform] [--no-prune] OUT

(``bin/package OUT`` is the same.) With its dependencies the package unzips to ~220 MB, against
Lambda's 250 MiB limit on a function's unzipped code. The prune step takes out, and only these:

- ``runtime``: the distributions the Lambda Python runtime already provides (boto3, botocore,
  s3transfer, jmespath, python-dateutil, six, urllib3; botocore comes in through aws-xray-sdk),
  every file their RECORD lists, so the runtime's own copies are the ones imported;
- ``fontTools``: all of fontTools but its top-level modules and the pure-Python ``fontTools.misc``
  (matplotlib imports ``fontTools.agl`` for text layout; the rest serves PDF/PS/usetex output and
  font editing, and we render Agg PNGs only);
- ``tests``: the test suites inside dependencies (``*/tests/``), except ``astropy/tests``, whose
  test runner ``astropy/__init__`` imports;
- ``iers``: astropy's Earth-orientation tables (IERS-A ``finals2000A.all``, IERS-B ``eopc04``),
  read only to convert to UT1 or for polar motion (astropy.time/coordinates), which the service
  never does (it uses astropy.io.fits; ``astropy.utils.data`` imports ``astropy_iers_data`` only
  for the file names, and the leap-second table stays).

Licence files are never removed from a distribution that stays. The app's own files (app.py,
chalicelib/, chalice/) are never touched. tests/test_deploy_package_contents.py builds the pruned
package and runs every module of the app, every plot and every file format from it with only the
runtime's packages beside it.

``--cache DIR`` (default ``.local/package-cache``) keeps chalice's dependency zip (its
``.chalice/deployments``, one per requirements.txt) between builds, also of copies of the project
(the packaging test): the first build downloads the Linux wheels from PyPI, a rebuild with the same
requirements takes seconds. Delete the folder to fetch the newest versions the requirements allow.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
LAMBDA_UNZIPPED_LIMIT = 250 * MIB  # code + layers of one function, unzipped (262,144,000 bytes)
TARGET_UNZIPPED = 150 * MIB  # what we keep to: room for growth under the limit
DEFAULT_REGION = "ap-southeast-2"
DEFAULT_CACHE = PROJECT_ROOT / ".local" / "package-cache"

# What the Lambda python3.12 runtime has on its path (/var/runtime), as distribution names.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
APP_PATHS = ("app.py", "chalicelib/", "chalice/")  # ours: never pruned
# Test packages a library imports at run time (astropy/__init__ imports astropy.tests.runner).
IMPORTED_TEST_PACKAGES = {("astropy", "tests")}
IERS_TABLES = ("astropy_iers_data/data/finals2000A.all", "astropy_iers_data/data/eopc04.1962-now")
_LICENCE = re.compile(r"^(licen[cs]e|copying|notice|authors)", re.IGNORECASE)


def normalise(dist: str) -> str:
    """A distribution name as PyPI compares them (``python_dateutil`` == ``python-dateutil``)."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def runtime_files(names: Iterable[str], record: Mapping[str, str]) -> set[str]:
    """The entries of the runtime-provided distributions: what each one's RECORD lists, and the RECORD itself.

    ``record`` maps a ``<dist>-<version>.dist-info/RECORD`` entry to its text."""
    wanted = {normalise(d) for d in RUNTIME_PROVIDED}
    present = set(names)
    out: set[str] = set()
    for path, text in record.items():
        dist_info = path.split("/", 1)[0]
        if normalise(dist_info.removesuffix(".dist-info").rsplit("-", 1)[0]) not in wanted:
            continue
        for line in text.splitlines():
            entry = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
            if entry and entry in present:
                out.add(entry)
        out.update(n for n in present if n.startswith(dist_info + "/"))
    return out


def prune_reason(name: str) -> str | None:
    """Why a dependency file (other than the runtime's) is left out of the package; None keeps it."""
    if name.startswith(APP_PATHS) or _LICENCE.match(PurePosixPath(name).name):
        return None
    parts = name.split("/")
    if parts[0] == "fontTools" and len(parts) > 1:
        top_module = len(parts) == 2 and name.endswith(".py")
        misc_python = parts[1] == "misc" and name.endswith(".py")
        return None if top_module or misc_python else "fontTools"
    for i, part in enumerate(parts[:-1]):
        if part == "tests" and tuple(parts[:i + 1]) not in IMPORTED_TEST_PACKAGES:
            return "tests"
    if name in IERS_TABLES:
        return "iers"
    return None


@dataclass
class PruneReport:
    """Unzipped sizes before and after, and what went out for which reason."""

    before: dict[str, int] = field(default_factory=dict)  # entry -> unzipped bytes, the whole input
    removed: dict[str, str] = field(default_factory=dict)  # entry -> reason

    @property
    def kept(self) -> dict[str, int]:
        return {n: s for n, s in self.before.items() if n not in self.removed}

    @property
    def total_before(self) -> int:
        return sum(self.before.values())

    @property
    def total_after(self) -> int:
        return sum(self.kept.values())

    def removed_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for name, reason in self.removed.items():
            out[reason] += self.before[name]
        return dict(sorted(out.items()))


def top_level_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    """Unzipped bytes per top-level folder (or file) of the package, largest first."""
    out: dict[str, int] = defaultdict(int)
    for name, size in sizes.items():
        out[name.split("/", 1)[0]] += size
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def plan(zf: zipfile.ZipFile) -> PruneReport:
    """What pruning the deployment zip would remove, and why."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    names = [i.filename for i in infos]
    records = {n: zf.read(n).decode("utf-8", "replace") for n in names
               if re.fullmatch(r"[^/]+\.dist-info/RECORD", n)}
    report = PruneReport(before={i.filename: i.file_size for i in infos})
    for name in runtime_files(names, records):
        if not name.startswith(APP_PATHS):
            report.removed[name] = "runtime"
    for name in names:
        if name not in report.removed and (reason := prune_reason(name)):
            report.removed[name] = reason
    return report


def prune_zip(path: Path) -> PruneReport:
    """Rewrite the deployment zip at ``path`` without the pruned entries (same order, dates, modes)."""
    with zipfile.ZipFile(path) as src:
        report = plan(src)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as dst:
                for info in src.infolist():
                    if info.filename in report.removed:
                        continue
                    with src.open(info) as data, dst.open(info, "w") as out:
                        shutil.copyfileobj(data, out, 1 << 20)
        except BaseException:
            os.unlink(tmp)
            raise
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)
    return report


def _restore_cache(cache: Path, project: Path) -> set[str]:
    deployments = project / ".chalice" / "deployments"
    deployments.mkdir(parents=True, exist_ok=True)
    found = set()
    for zipped in cache.glob("*.zip") if cache.is_dir() else ():
        if not (deployments / zipped.name).exists():
            shutil.copy2(zipped, deployments / zipped.name)
        found.add(zipped.name)
    return found


def _save_cache(cache: Path, project: Path, known: set[str]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    for zipped in (project / ".chalice" / "deployments").glob("*.zip"):
        if zipped.name not in known:  # written atomically: parallel builds may share the cache
            tmp = cache / f".{zipped.name}.{os.getpid()}.tmp"
            shutil.copy2(zipped, tmp)
            os.replace(tmp, cache / zipped.name)


def chalice_package(project: Path, out: Path, *, stage: str = "prod", pkg_format: str = "cloudformation",
                    cache: Path | None = None, env: Mapping[str, str] | None = None) -> None:
    """Run ``chalice package`` for ``stage`` in ``project`` (merging .chalice/resources.json into SAM)."""
    args = ["package", "--stage", stage, "--pkg-format", pkg_format]
    if pkg_format == "cloudformation" and (project / ".chalice" / "resources.json").exists():
        args += ["--merge-template", ".chalice/resources.json"]
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)  # chalice needs a region, no credentials
    known = _restore_cache(cache, project) if cache else set()
    cmd = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())", *args, str(out)]
    proc = subprocess.run(cmd, cwd=project, env=run_env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chalice package failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    if cache:
        _save_cache(cache, project, known)


def build(out: Path, *, project: Path = PROJECT_ROOT, stage: str = "prod", pkg_format: str = "cloudformation",
          prune: bool = True, cache: Path | None = None, env: Mapping[str, str] | None = None) -> PruneReport | None:
    """``chalice package`` into ``out``, then prune ``out/deployment.zip``; the prune report (None unpruned)."""
    chalice_package(project, out, stage=stage, pkg_format=pkg_format, cache=cache, env=env)
    return prune_zip(out / "deployment.zip") if prune else None


def mib(n: int) -> str:
    return f"{n / MIB:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder (sam.json or chalice.tf.json, deployment.zip)")
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--pkg-format", default="cloudformation", choices=("cloudformation", "terraform"))
    parser.add_argument("--no-prune", action="store_true", help="leave chalice's zip as it is")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where chalice's dependency zips are kept between builds (default .local/package-cache)")
    args = parser.parse_args(argv)
    report = build(args.out.resolve(), stage=args.stage, pkg_format=args.pkg_format, prune=not args.no_prune,
                   cache=args.cache.resolve() if args.cache else None)
    zip_path = args.out / "deployment.zip"
    if report is None:
        with zipfile.ZipFile(zip_path) as zf:
            total = sum(i.file_size for i in zf.infolist())
        print(f"{zip_path}: {mib(total)} MiB unzipped (not pruned)")
    else:
        total = report.total_after
        removed = ", ".join(f"{reason} {mib(size)}" for reason, size in report.removed_by_reason().items())
        print(f"{zip_path}: {mib(report.total_before)} -> {mib(total)} MiB unzipped "
              f"(removed MiB: {removed}); {zip_path.stat().st_size / MIB:.1f} MiB zipped")
    if total >= LAMBDA_UNZIPPED_LIMIT:
        print(f"over Lambda's {mib(LAMBDA_UNZIPPED_LIMIT)} MiB unzipped limit: the deployment would fail",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
