"""``<obs>_flags.py`` run in real CASA: exactly the named tiles end up flagged, autocorrelations included.

casatools + casatasks from PyPI live in their own venv, ``.local/casa-venv``, made by
``bin/_casa_env.sh`` (a minute or two the first time, cached after). The test builds a small
measurement set of real MWA tiles (names and positions from a real metafits) with casatools'
simulator, runs the script the service writes on copies of it -- as ``python <script> <ms>`` and as
``casa -c <script> <ms>`` leaves things (casa's own arguments in ``sys.argv``, ``flagdata`` a
global) -- and reads the FLAG column back from the main table. If CASA cannot be set up, it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from chalicelib.formats.flags import casa_flag_script
from chalicelib.instrument import COARSE_CHAN_HZ, MWA_LATITUDE_DEG, MWA_LONGITUDE_DEG
from tests.mwa_files import PROJECT_ROOT, mwa_file

OBS = 1457904016
IN_MS = ["Tile011", "Tile012", "Tile075", "HexE1", "HexE10", "HexS1", "LBG6"]  # real tiles of OBS
ODD = "Hex~S2"  # HexS2 renamed: '~' is CASA's range operator, so this one is selected by index
FLAGGED = ["Tile075", "HexE1", "LBG6", ODD, "Tile099"]  # as the service lists them; no Tile099 in the MS
CASA_TIMEOUT_S = 600


@dataclass(frozen=True)
class Run:
    """One run of the flag script: the MS it was given, what it printed, its exit status."""

    ms: Path
    stdout: str
    stderr: str
    returncode: int


def _casa(python: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the CASA venv's python; HOME and the working directory in tmp (CASA writes its logs there)."""
    env = {**os.environ, "HOME": str(cwd)}
    return subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=CASA_TIMEOUT_S)


@pytest.fixture(scope="module")
def casa_python() -> str:
    """The CASA venv's python wrapper, set up on first use; failing (not skipping) when that cannot be done."""
    for _attempt in range(2):  # a download from PyPI can break off: one more try before the test fails
        setup = subprocess.run(["bash", str(PROJECT_ROOT / "bin" / "_casa_env.sh")], capture_output=True, text=True,
                               timeout=1800)
        if setup.returncode == 0 and setup.stdout.strip():
            break
    if setup.returncode != 0 or not setup.stdout.strip():
        pytest.fail("CASA (casatools + casatasks from PyPI) could not be set up by bin/_casa_env.sh, so the flag "
                    f"script cannot be checked in real CASA:\n{setup.stderr[-4000:]}")
    return setup.stdout.strip().splitlines()[-1]


def _spec() -> dict:
    """The simulated observation: IN_MS tiles plus ODD at their real positions, OBS's pointing and start."""
    path = mwa_file(str(OBS), f"{OBS}_metafits.fits")
    header, tiles = fits.getheader(path), fits.getdata(path, "TILEDATA")
    rows = {str(r["TileName"]).strip(): r for r in tiles if str(r["Pol"]).strip() == "X"}
    picked = [rows[n] for n in IN_MS] + [rows["HexS2"]]
    height = float(np.mean([r["Height"] for r in picked]))
    return {
        "names": IN_MS + [ODD],
        "east_m": [float(r["East"]) for r in picked], "north_m": [float(r["North"]) for r in picked],
        "up_m": [float(r["Height"]) - height for r in picked],
        "longitude_deg": MWA_LONGITUDE_DEG, "latitude_deg": MWA_LATITUDE_DEG, "height_m": height,
        "ra_deg": float(header["RA"]), "dec_deg": float(header["DEC"]),
        "start_utc": header["DATE-OBS"].replace("-", "/").replace("T", "/"),
        "freq_hz": header["CENTCHAN"] * COARSE_CHAN_HZ, "chan_hz": header["FINECHAN"] * 1e3, "channels": 2,
        "integration_s": 2.0, "integrations": 3,
    }


@pytest.fixture(scope="module")
def runs(casa_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Build the MS once; run the script on two copies of it; read all three MSs' flags back."""
    tmp = tmp_path_factory.mktemp("casa")
    helper = str(PROJECT_ROOT / "tests" / "casa_ms.py")
    (tmp / "spec.json").write_text(json.dumps(_spec()))
    pristine = tmp / f"{OBS}.ms"
    built = _casa(casa_python, helper, "build", str(tmp / "spec.json"), str(pristine), cwd=tmp)
    assert built.returncode == 0 and (pristine / "table.dat").is_file(), built.stderr[-4000:]
    script = tmp / f"{OBS}_flags.py"
    script.write_text(casa_flag_script(OBS, FLAGGED))

    # as a user with casatasks: python <script> <ms>, the MS in a folder whose name does not end in .ms
    plain_ms = tmp / "my data" / "obs1457904016.MS_copy"
    shutil.copytree(pristine, plain_ms)
    plain = _casa(casa_python, str(script), str(plain_ms), cwd=tmp)

    # as casa -c leaves it: flagdata a global, casa's own arguments (one of them a directory) in argv
    casa_ms = tmp / "casa" / f"{OBS}.ms"
    shutil.copytree(pristine, casa_ms)
    (tmp / "rc").mkdir()
    argv = ["casa", "--rcdir", str(tmp / "rc"), "--nologger", "-c", str(script), f"{casa_ms}/"]
    as_casa = _casa(casa_python, "-c", "import json, runpy, sys\n"
                    "from casatasks import flagdata\n"
                    "sys.argv = json.loads(sys.argv[1])\n"
                    "runpy.run_path(sys.argv[-2], init_globals={'flagdata': flagdata}, run_name='__main__')\n",
                    json.dumps(argv), cwd=tmp)

    read = _casa(casa_python, helper, "flags", str(tmp / "flags.json"), str(pristine), str(plain_ms), str(casa_ms),
                 cwd=tmp)
    assert read.returncode == 0, read.stderr[-4000:]
    flags = json.loads((tmp / "flags.json").read_text())
    return {
        "pristine": flags[str(pristine)],
        "plain": (Run(plain_ms, plain.stdout, plain.stderr, plain.returncode), flags[str(plain_ms)]),
        "casa": (Run(casa_ms, as_casa.stdout, as_casa.stderr, as_casa.returncode), flags[str(casa_ms)]),
    }


def _flagged_fraction(ms_flags: dict) -> dict[tuple[str, str], float]:
    """Per baseline (names, autocorrelations as (a, a)): the fraction of its FLAG values set."""
    names = ms_flags["names"]
    return {(names[i], names[j]): flagged / values for i, j, _rows, flagged, values in ms_flags["baselines"]}


def _expected(names: list[str], tiles: set[str]) -> dict[tuple[str, str], float]:
    """Every baseline and autocorrelation of the named tiles fully flagged, every other baseline not at all."""
    return {(names[i], names[j]): float(names[i] in tiles or names[j] in tiles)
            for i in range(len(names)) for j in range(i, len(names))}


def test_the_simulated_ms_has_every_baseline_and_autocorrelation_and_no_flags(runs) -> None:
    pristine = runs["pristine"]
    assert pristine["names"] == IN_MS + [ODD]
    assert _flagged_fraction(pristine) == _expected(pristine["names"], set())  # 36 baselines, 8 of them autos
    assert all(rows == 3 for _i, _j, rows, _f, _v in pristine["baselines"])  # 3 integrations each


@pytest.mark.parametrize("how", ["plain", "casa"])
def test_exactly_the_named_tiles_are_flagged_completely(runs, how: str) -> None:
    run, ms_flags = runs[how]
    assert run.returncode == 0, run.stderr[-4000:]
    present = {"Tile075", "HexE1", "LBG6", ODD}
    got = _flagged_fraction(ms_flags)
    assert got == _expected(ms_flags["names"], present)
    assert got[("HexE1", "HexE1")] == 1.0 and got[("HexE10", "HexE10")] == 0.0  # autos; no prefix match


@pytest.mark.parametrize("how", ["plain", "casa"])
def test_one_flag_backup(runs, how: str) -> None:
    run, _ = runs[how]
    versions = (run.ms.parent / f"{run.ms.name}.flagversions" / "FLAG_VERSION_LIST").read_text().splitlines()
    assert len([v for v in versions if v.strip()]) == 1, versions


@pytest.mark.parametrize("how", ["plain", "casa"])
def test_the_script_says_what_it_flagged_and_skipped(runs, how: str) -> None:
    run, _ = runs[how]
    lines = run.stdout.splitlines()
    assert f"Measurement set: {run.ms}" in lines
    assert f"Flagged 4 tile(s), every baseline and autocorrelation: Tile075, HexE1, LBG6, {ODD}" in lines
    assert "Skipped 1 tile(s) the measurement set lacks: Tile099" in lines

