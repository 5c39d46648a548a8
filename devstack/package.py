"""Build the Lambda deployment package: ``chalice package``, then the zip again without what Lambda never runs.

    python -m devstack.package [--stage prod] [--pkg-format cloudformation|terraform] [--no-prune] OUT

(``bin/package OUT`` is the same.) With its dependencies chalice's zip unzips to ~201 MiB, against
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

``--cache DIR`` (default ``.local/package-cache``) keeps chalice's zip, one per requirements.txt,
between builds (also of copies of the project: the packaging test). The first build downloads the
Linux wheels from PyPI (minutes); later ones put the app's current files into the cached zip
(chalice's own ``inject_latest_app``) and need no network. Delete the folder to fetch the newest
versions the requirements allow.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
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


def _chalice_packager():
    """The packager ``chalice package`` uses (x86_64, the local interpreter's Lambda runtime)."""
    from chalice.deploy.packager import DependencyBuilder, LambdaDeploymentPackager
    from chalice.utils import UI, OSUtils

    return LambdaDeploymentPackager(osutils=OSUtils(), dependency_builder=DependencyBuilder(OSUtils()), ui=UI())


def _chalice_zip_name(project: Path) -> tuple[Path, str]:
    """Where ``chalice package`` looks for (and keeps) its zip of this project, and the Lambda runtime it targets.

    Chalice names it by a hash of requirements.txt *and the app's files*, so every change of the app
    would download the dependencies again; the cache below is keyed by requirements.txt alone."""
    from chalice.config import Config

    runtime = Config().lambda_python_version
    return Path(_chalice_packager().deployment_package_filename(str(project), runtime)), runtime


def _cache_key(project: Path, runtime: str) -> str:
    digest = hashlib.sha256((project / "requirements.txt").read_bytes() + runtime.encode()).hexdigest()[:20]
    return f"deps-{digest}-{runtime}.zip"


def _restore_cache(cache: Path, project: Path) -> tuple[Path, Path]:
    """Put the cached zip for these requirements where chalice looks, with this app's files in it."""
    target, runtime = _chalice_zip_name(project)
    cached = cache / _cache_key(project, runtime)
    if cached.exists() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".restoring")
        shutil.copy2(cached, tmp)
        with contextlib.redirect_stdout(io.StringIO()):  # chalice's "Regen deployment package."
            _chalice_packager().inject_latest_app(str(tmp), str(project))
        os.replace(tmp, target)
    return target, cached


def _save_cache(target: Path, cached: Path) -> None:
    """Keep chalice's zip for these requirements (written atomically: builds may run in parallel); drop its copy."""
    if target.exists():
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
            shutil.copy2(target, tmp)
            os.replace(tmp, cached)
        target.unlink()  # one ~70 MB zip per version of the app would pile up in .chalice/deployments


def chalice_package(project: Path, out: Path, *, stage: str = "prod", pkg_format: str = "cloudformation",
                    cache: Path | None = None, env: Mapping[str, str] | None = None) -> None:
    """Run ``chalice package`` for ``stage`` in ``project`` (merging .chalice/resources.json into SAM)."""
    args = ["package", "--stage", stage, "--pkg-format", pkg_format]
    if pkg_format == "cloudformation" and (project / ".chalice" / "resources.json").exists():
        args += ["--merge-template", ".chalice/resources.json"]
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)  # chalice needs a region, no credentials
    cached = _restore_cache(cache, project) if cache else None
    cmd = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())", *args, str(out)]
    proc = subprocess.run(cmd, cwd=project, env=run_env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chalice package failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    if cached:
        _save_cache(*cached)


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
