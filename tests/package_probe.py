"""Run the app from an unzipped deployment package alone, as Lambda would (tests/test_deploy_package_contents).

    python -I -S tests/package_probe.py TREE RUNTIME FIXTURES INPUT OUT

``-I -S``: no site-packages, no script folder, no PYTHONPATH, so only TREE (the unzipped package,
first, as /var/task is) and RUNTIME (the packages the Lambda runtime provides) can be imported.
Imports every module of the app found in TREE, starts the X-Ray tracer as an event function
does, compiles every template, renders each plot kind from the plain rows in INPUT (JSON) and
writes each file format from the real MWA files in FIXTURES. Writes the PNGs and files to OUT and
what happened to OUT/report.json; the test checks them with the full test environment.

Functions are looked up by name in whichever module of the app defines them, so modules may move.
"""

from __future__ import annotations

import sys

TREE, RUNTIME, FIXTURES, INPUT, OUT = sys.argv[1:6]
sys.path[:0] = [TREE, RUNTIME]

import importlib  # noqa: E402 - after the path is set
import json  # noqa: E402
import os  # noqa: E402
import traceback  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402

tree, out = Path(TREE), Path(OUT)
os.environ.update(
    POWERTOOLS_SERVICE_NAME="mwa-calib", POWERTOOLS_METRICS_NAMESPACE="MWACalibProbe",
    MPLCONFIGDIR=str(out / "mplconfig"), AWS_DEFAULT_REGION="ap-southeast-2", AWS_REGION="ap-southeast-2",
    LAMBDA_TASK_ROOT=TREE, AWS_LAMBDA_FUNCTION_NAME="mwa-calib-prod-on_cal_file",
    AWS_EXECUTION_ENV="AWS_Lambda_python3.12",
)
os.environ.pop("POWERTOOLS_TRACE_DISABLED", None)
report: dict = {"imported": [], "failed": {}, "outside": [], "plots": {}, "files": {}, "read_back": {},
                "errors": {}}


def app_modules() -> list[str]:
    """app and every chalicelib module, from the files in the package."""
    names = ["app"] if (tree / "app.py").is_file() else []
    for path in sorted((tree / "chalicelib").rglob("*.py")):
        parts = path.relative_to(tree).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


for name in app_modules():
    try:
        importlib.import_module(name)
        report["imported"].append(name)
    except BaseException:  # noqa: BLE001 - report every module that fails, not only the first
        report["failed"][name] = traceback.format_exc()


def find(name: str):
    """The one object called ``name`` that the app's modules hold."""
    found = {id(getattr(m, name)): getattr(m, name) for n, m in list(sys.modules.items())
             if n.split(".")[0] in ("app", "chalicelib") and hasattr(m, name)}
    if len(found) != 1:
        raise LookupError(f"{len(found)} objects named {name} in the app's modules")
    return next(iter(found.values()))


def step(label: str):
    """Run one check; its failure is reported under its label and the others still run."""
    def wrap(fn):
        try:
            fn()
        except BaseException:  # noqa: BLE001
            report["errors"][label] = traceback.format_exc()
        return fn
    return wrap


def save(name: str, data: bytes | str) -> None:
    (out / name).write_bytes(data.encode() if isinstance(data, str) else data)
    report["files"][name] = len(data)


@step("tracer")
def _tracer():
    tracer = find("tracer")()  # what the event functions start: X-Ray with botocore patched
    from aws_xray_sdk.core import patcher

    import boto3

    boto3.client("s3")  # a patched client from the runtime's boto3
    report["tracer"] = {"class": type(tracer).__name__, "patched": sorted(patcher._PATCHED_MODULES)}


@step("templates")
def _templates():
    env = find("environment")()
    names = sorted(p.name for p in (tree / "chalicelib" / "templates").glob("*.html"))
    for template in names:
        env.get_template(template)
    report["templates"] = names


plot_input = json.loads(Path(INPUT).read_text())


def plot_args(kind: str) -> tuple[list, dict]:
    """compute()'s arguments for each kind, as chalicelib.plots.service passes them."""
    d = plot_input
    common = dict(fitid=d["fitid"], obsid=d["obsid"], creator=d["creator"])
    by_obs = {int(k): v for k, v in d["channels_by_obs"].items()}
    if kind == "tilediff":
        return [d["tile_rows"], d["solution_rows"]], common
    if kind == "phasefit":  # the table's lines only (no solution files here)
        lines = [dict(r, x_intercept=0.0, y_intercept=0.0) for r in d["solution_rows"]]
        return [d["tile_rows"], lines, None], dict(channels=d["channels"], **common)
    if kind == "gains":
        return [d["tile_rows"], d["solution_rows"]], dict(channels=d["channels"], **common)
    if kind in ("timediff", "xydiff"):
        return [d["tile_rows"], d["solution_rows"], d["delay_blocks"]], common
    return [d["tile_rows"], d["solution_rows"], d["gain_blocks"]], dict(channels=d["channels"],
                                                                      channels_by_obs=by_obs, **common)


for kind in find("KINDS"):
    @step(f"plot {kind}")
    def _plot(kind=kind):
        module = find("plot_module")(kind)
        args, kwargs = plot_args(kind)
        save(f"{kind}.png", module.render(module.compute(*args, **kwargs)))
        report["plots"][kind] = f"{kind}.png"

fixtures = Path(FIXTURES)


def solution_from(jones, names, antennas, freqs, times, cal_obsid):
    tile_info = find("TileInfo")
    tiles = [tile_info(antenna=int(a), tile_id=1000 + int(a), name=n, rx=int(a) // 8 + 1, slot=int(a) % 8 + 1)
             for a, n in zip(antennas, names)]
    return find("CalibrationSolution")(jones=jones, tiles=tiles, freqs_hz=freqs, times_gps=times, cal_obsid=cal_obsid)


@step("aocal")
def _aocal():
    f = find("read_aocal")((fixtures / "1186438304" / "1186438304_ch142-149_solutions.bin").read_bytes())
    n_ant, n_chan = f.jones.shape[1:3]
    sol = solution_from(f.jones, [f"Tile{a:03d}" for a in range(n_ant)], range(n_ant),
                        [100e6 + 40e3 * c for c in range(n_chan)], [tuple(f.times_gps[0])], 1186438304)
    written = find("write_aocal")(sol)
    save("aocal.bin", written)
    again = find("read_aocal")(written)
    report["read_back"]["aocal"] = {"shape": list(again.jones.shape), "start": again.times_gps[0][0]}


@step("hyperdrive and flags")
def _hyperdrive():
    h = find("read_hyperdrive")(fixtures / "1369821496" / "hyp_soln_1369821496_ch170_solutions.fits")
    sol = solution_from(h.jones, [t.name for t in h.tiles], [t.antenna for t in h.tiles], h.freqs_hz,
                        [(float(s), float(e)) for s, e in h.times_gps], h.cal_obsid)
    written = find("write_hyperdrive")(sol)
    save("hyperdrive.fits", written)
    again = find("read_hyperdrive")(written)
    report["read_back"]["hyperdrive"] = {"obsid": again.cal_obsid, "shape": list(again.jones.shape),
                                         "tile_names": [t.name for t in again.tiles]}
    flagged = sol.flagged_antennas()
    save("flagged_tiles.txt", find("flagged_tiles_text")(flagged))
    save("flags.py", find("casa_flag_script")(h.cal_obsid, [sol.tiles[a].name for a in flagged]))


@step("metafits")
def _metafits():
    path = fixtures / "1457904016" / "1457904016_metafits.fits"
    info = find("read_metafits")(path)
    fit = find("fit_from_metafits")(info)
    applied = find("AppliedFit")(fitid=fit.fitid, cal_obsid=fit.obsid, target_obsid=info.obsid,
                                 code_version=fit.code_version, fit_time=fit.fit_time, creator=fit.creator,
                                 fit_niter=fit.fit_niter, fit_limit=fit.fit_limit)
    rows = [asdict(r) for r in find("calibdata_rows")(info)]
    save("metafits_applied.fits", find("apply_calibration_bytes")(path.read_bytes(), applied, rows, info.channels))
    observation = find("observation_from_metafits")(info)
    save("metafits_generated.fits", find("to_bytes")(find("generate_metafits")(observation)))
    for name in ("metafits_applied.fits", "metafits_generated.fits"):
        again = find("read_metafits")((out / name).read_bytes())
        calib = getattr(again, "calib", None)
        report["read_back"][name] = {"obsid": again.obsid, "tiles": len(again.tiles),
                                     "fitid": find("fit_from_metafits")(again).fitid if calib else None}
    report["metafits"] = {"obsid": info.obsid, "tiles": len(info.tiles), "fitid": fit.fitid, "cal_obsid": fit.obsid}


@step("zip")
def _zip():
    files = {name: (out / name).read_bytes() for name in sorted(report["files"])}
    save("bundle.zip", find("build_zip")(files))


# Where every loaded module came from: the package, the runtime's packages, or the standard library.
allowed = [TREE, RUNTIME] + [p for p in sys.path[2:] if "site-packages" not in p]
for name, module in sorted(sys.modules.items()):
    file = getattr(module, "__file__", None)
    if file and os.path.abspath(file) != os.path.abspath(__file__) and not any(os.path.abspath(file).startswith(os.path.abspath(root) + os.sep) for root in allowed):
        report["outside"].append(f"{name}: {file}")
report["runtime_used"] = sorted({n.split(".")[0] for n, m in sys.modules.items()
                                 if (getattr(m, "__file__", None) or "").startswith(RUNTIME + os.sep)})
(out / "report.json").write_text(json.dumps(report, indent=1, default=str))
