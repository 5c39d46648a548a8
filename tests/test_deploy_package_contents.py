"""The deployment package as Lambda gets it: built with the prune step, small enough, and complete.

Built once per session with ``devstack.package`` (the release command) from a copy of the project;
chalice's dependency zip is kept in ``.local/package-cache`` so a rerun takes seconds (the first
build downloads the Linux wheels from PyPI). The unzipped tree then runs in a fresh interpreter
that sees only it and the packages the Lambda python3.12 runtime provides (tests/package_probe.py),
and what that interpreter wrote is checked here with the full test environment.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from devstack import package
from tests import summary_fixtures as fx
from tests.mwa_files import MWA_FIXTURES, mwa_file
from tests.test_plots_data import blocks, solution_rows, tile_rows
from tests.plot_images import check_png

PROJECT = Path(__file__).resolve().parent.parent
CACHE = PROJECT / ".local" / "package-cache"
# The Lambda python3.12 runtime's own packages (distribution -> what it puts on the path).
RUNTIME_DISTRIBUTIONS = {"boto3": ["boto3"], "botocore": ["botocore"], "s3transfer": ["s3transfer"],
                         "jmespath": ["jmespath"], "python_dateutil": ["dateutil"], "six": ["six.py"],
                         "urllib3": ["urllib3"]}
LIMIT_MIB = 250  # Lambda: a function's code, unzipped
TARGET_MIB = 150


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict:
    """The pruned package of the prod stage, unzipped; with the prune report and the build's time."""
    root = tmp_path_factory.mktemp("package")
    project = root / "project"
    project.mkdir()
    shutil.copy2(PROJECT / "app.py", project / "app.py")
    shutil.copy2(PROJECT / "requirements.txt", project / "requirements.txt")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "venv")
    shutil.copytree(PROJECT / "chalicelib", project / "chalicelib", ignore=ignore)
    shutil.copytree(PROJECT / ".chalice", project / ".chalice", ignore=ignore)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no credentials needed
    env.update(AWS_DEFAULT_REGION="ap-southeast-2", PYTHONDONTWRITEBYTECODE="1")
    t0 = time.perf_counter()
    report = package.build(root / "out", project=project, cache=CACHE, env=env)
    build_s = time.perf_counter() - t0
    tree = root / "tree"
    with zipfile.ZipFile(root / "out" / "deployment.zip") as zf:
        zf.extractall(tree)
    return {"tree": tree, "report": report, "build_s": build_s}


def _unzipped_bytes(tree: Path) -> int:
    return sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def runtime(tmp_path_factory) -> Path:
    """The packages the Lambda runtime provides, from the test environment, in a folder of their own."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    folder = tmp_path_factory.mktemp("lambda-runtime")
    for dist, tops in RUNTIME_DISTRIBUTIONS.items():
        for top in tops:
            (folder / top).symlink_to(site / top)
        (info,) = [p for p in site.glob("*.dist-info")
                   if package.normalise(p.name.removesuffix(".dist-info").rsplit("-", 1)[0]) == package.normalise(dist)]
        (folder / info.name).symlink_to(info)
    return folder


def _plot_input() -> dict:
    """Plain rows of the hand-built data set (summary_fixtures): fit F_CALVIN of observation A."""
    def listed(bs):
        return [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in b.items()} for b in bs]
    by_obs = {}
    for (_fitid, obsid) in fx.FITS:
        by_obs[str(obsid)] = fx.PICKET if obsid in (fx.B, fx.D) else fx.CONTIGUOUS
    return {"fitid": fx.F_CALVIN, "obsid": fx.A, "creator": "calvin", "channels": fx.CONTIGUOUS,
            "tile_rows": tile_rows(fx.A), "solution_rows": solution_rows(fx.F_CALVIN, fx.A),
            "delay_blocks": listed(blocks()), "gain_blocks": listed(blocks("gains")), "channels_by_obs": by_obs}


@pytest.fixture(scope="session")
def probe(built, runtime, tmp_path_factory) -> dict:
    """Run tests/package_probe.py on the unzipped package; its report and output folder."""
    mwa_file("1457904016", "1457904016_metafits.fits")  # the fixtures must be there (fail, never skip)
    out = tmp_path_factory.mktemp("probe")
    data = out / "input.json"
    data.write_text(json.dumps(_plot_input()))
    cmd = [sys.executable, "-I", "-S", str(PROJECT / "tests" / "package_probe.py"), str(built["tree"]), str(runtime),
           str(MWA_FIXTURES), str(data), str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=out, env={"PATH": "/usr/bin:/bin", "HOME": str(out)}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    report["probe_s"] = time.perf_counter() - t0
    return {"report": report, "out": out}


def test_the_pruned_package_unzips_under_the_target_and_far_under_lambdas_limit(built):
    size = _unzipped_bytes(built["tree"])
    before = built["report"].total_before
    print(f"\nunzipped {size / 2**20:.1f} MiB (unpruned {before / 2**20:.1f} MiB); built in {built['build_s']:.0f} s")
    assert size < TARGET_MIB * 2**20 < LIMIT_MIB * 2**20
    assert size == built["report"].total_after
    assert before - size > 40 * 2**20  # what the prune step is for: chalice's zip alone is ~200 MiB


def test_the_runtimes_packages_are_left_to_the_runtime(built):
    tree = built["tree"]
    for dist, tops in RUNTIME_DISTRIBUTIONS.items():
        for top in tops:
            assert not (tree / top).exists(), top
        assert not [p.name for p in tree.glob("*.dist-info") if p.name.lower().startswith(dist.lower() + "-")]
    # what the app needs that the runtime lacks is still there
    for needed in ("numpy", "matplotlib", "astropy", "jinja2", "pg8000", "aws_lambda_powertools", "aws_xray_sdk",
                   "PIL", "chalice", "chalicelib", "app.py"):
        assert (tree / needed).exists(), needed


def test_no_test_suite_of_a_dependency_is_packaged(built):
    tree = built["tree"]
    suites = [p.relative_to(tree) for p in tree.rglob("tests") if p.is_dir()]
    assert suites == [Path("astropy/tests")]  # imported by astropy/__init__ (its test runner)


def test_every_packaged_distribution_keeps_its_licence_files(built):
    """Each dist-info's METADATA names its licence files (License-File); every one is still there."""
    tree = built["tree"]
    checked = 0
    for info in sorted(tree.glob("*.dist-info")):
        meta = email.message_from_string((info / "METADATA").read_text(errors="replace"))
        for name in meta.get_all("License-File") or []:
            assert (info / "licenses" / name).is_file() or (info / name).is_file(), f"{info.name}: {name}"
            checked += 1
    assert checked >= 15


def test_every_module_of_the_app_imports_from_the_package_alone(built, probe):
    report = probe["report"]
    print(f"\nprobe ran in {report['probe_s']:.1f} s")
    assert report["failed"] == {}, "\n".join(report["failed"].values())
    files = sorted(p.relative_to(built["tree"]) for p in (built["tree"] / "chalicelib").rglob("*.py"))
    assert len(report["imported"]) == len(files) + 1 and "app" in report["imported"]
    assert report["outside"] == []  # nothing came from the test environment's site-packages
    # the event functions' X-Ray tracer starts and patches the runtime's botocore
    assert "tracer" not in report["errors"], report["errors"].get("tracer")
    assert report["tracer"]["class"] == "Tracer" and "botocore" in report["tracer"]["patched"]
    assert {"botocore", "boto3"} <= set(report["runtime_used"])
    assert "templates" not in report["errors"], report["errors"].get("templates")
    assert len(report["templates"]) == len(list((PROJECT / "chalicelib" / "templates").glob("*.html")))


def test_each_plot_renders_from_the_package_alone(probe):
    from chalicelib.plots import KINDS

    report = probe["report"]
    errors = {k: v for k, v in report["errors"].items() if k.startswith("plot")}
    assert errors == {}, "\n".join(errors.values())
    assert sorted(report["plots"]) == sorted(KINDS)
    for kind in KINDS:
        colours = ("#d62728",) + (("#1f5fbf",) if kind in ("timediff", "gaintimes", "xydiff") else ())
        check_png((probe["out"] / f"{kind}.png").read_bytes(), colours=colours)


def test_each_file_format_writes_and_reads_from_the_package_alone(probe):
    from astropy.io import fits

    report, out = probe["report"], probe["out"]
    assert report["errors"] == {}, "\n".join(report["errors"].values())
    # AO-cal: the real file, read and written again, byte for byte
    assert (out / "aocal.bin").read_bytes() == mwa_file("1186438304", "1186438304_ch142-149_solutions.bin").read_bytes()
    # hyperdrive: the same solutions as the real file, bit for bit; its all-NaN tiles are the flagged ones
    real_path = mwa_file("1369821496", "hyp_soln_1369821496_ch170_solutions.fits")
    with fits.open(real_path) as real, fits.open(out / "hyperdrive.fits") as ours:
        a, b = real["SOLUTIONS"].data, ours["SOLUTIONS"].data
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
        assert int(ours[0].header["OBSID"]) == 1369821496
        all_nan = [i for i in range(a.shape[1]) if np.isnan(a[:, i]).all()]
        names = [str(n).strip() for n in real["TILES"].data["TileName"]]
    assert all_nan and (out / "flagged_tiles.txt").read_text() == "".join(f"{i}\n" for i in all_nan)
    script = (out / "flags.py").read_text()
    compile(script, "flags.py", "exec")
    assert all(repr(names[i]) in script for i in all_nan)
    # metafits: the real one with its own fit applied keeps its CALIBDATA; a generated one describes it
    real_meta = mwa_file("1457904016", "1457904016_metafits.fits")
    with fits.open(real_meta) as real, fits.open(out / "metafits_applied.fits") as ours:
        for col in ("Calib_Delay", "Calib_Gains"):
            np.testing.assert_array_equal(ours["CALIBDATA"].data[col], real["CALIBDATA"].data[col])
        assert ours["CALIBDATA"].header["CALFITID"] == real["CALIBDATA"].header["CALFITID"]
        n_inputs = len(real["TILEDATA"].data)
    with fits.open(out / "metafits_generated.fits") as gen:
        assert gen[0].header["GPSTIME"] == 1457904016 and len(gen["TILEDATA"].data) == n_inputs
    assert report["metafits"]["tiles"] * 2 == n_inputs == 512
    # and each file written is read back by the package's own readers
    back = report["read_back"]
    assert back["aocal"]["shape"] == [1, 128, 256, 4]  # the fixture README's 128 antennas x 256 channels
    assert back["hyperdrive"]["obsid"] == 1369821496 and back["hyperdrive"]["shape"] == list(a.shape[:3]) + [4]
    assert back["hyperdrive"]["tile_names"] == names
    assert back["metafits_applied.fits"] == {"obsid": 1457904016, "tiles": 256, "fitid": 1773831785589944}
    assert back["metafits_generated.fits"] == {"obsid": 1457904016, "tiles": 256, "fitid": None}
    # zip: every file above, as written
    with zipfile.ZipFile(out / "bundle.zip") as zf:
        names_in_zip = sorted(zf.namelist())
        assert names_in_zip == sorted(n for n in report["files"] if n != "bundle.zip")
        for name in names_in_zip:
            assert zf.read(name) == (out / name).read_bytes(), name
