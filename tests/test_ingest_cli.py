"""``python -m chalicelib.ingest``: hyperdrive files on disk -> the database named by CALIB_DB_*."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys

from tests.mwa_files import PROJECT_ROOT
from tests.real_fit import fixture_files

CAL = 1369821496
FITID = 1685856000000001


def _count(sql: str, params: dict | None = None) -> int:
    from chalicelib import db

    return db.query(sql, params)[0]["n"]


def test_the_module_ingests_the_fixture_into_the_database(clean_db):
    solutions, metafits = fixture_files()
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "ERROR"}  # clean_db's CALIB_DB_* name the test database
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.ingest", "--metafits", str(metafits), "--fitid", str(FITID),
         "--creator", "engineer", *map(str, solutions)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"fit {FITID} of observation {CAL}: 144 rows written (126 solved, 18 all-NaN), reference tile 11" \
        in done.stdout
    assert "reading solutions" in done.stderr and "24/24" in done.stderr  # the progress bar

    from chalicelib import db

    [fit] = db.query("SELECT creator, code_version, fit_niter FROM calibration_fits WHERE fitid = :f AND obsid = :o",
                     {"f": FITID, "o": CAL})
    assert fit == {"creator": "engineer", "code_version": "Created by mwa_hyperdrive v0.2.1", "fit_niter": 50}
    rows = db.query("SELECT tileid, x_delay_m, y_delay_m, x_intercept FROM calibration_solutions"
                    " WHERE fitid = :f ORDER BY tileid", {"f": FITID})
    assert len(rows) == 144 and sum(math.isnan(r["x_delay_m"]) for r in rows) == 18
    assert (rows[0]["tileid"], rows[0]["x_delay_m"], rows[0]["x_intercept"]) == (11, 0.0, 0.0)
    assert _count("SELECT count(*) AS n FROM observation_tile WHERE obsid = :o", {"o": CAL}) == 144
    assert _count("SELECT count(*) AS n FROM calibration_fit_file") == 0  # no bucket, no file row

    # the same fit id again (in process, no progress bar): nothing written
    from chalicelib.ingest.__main__ import main

    out = io.StringIO()
    assert main(["--metafits", str(metafits), "--fitid", str(FITID), "--no-progress", *map(str, solutions)],
                stdout=out) == 0
    assert "already in the database: nothing written" in out.getvalue()
    assert _count("SELECT count(*) AS n FROM calibration_solutions") == 144


def test_bad_input_exits_1_without_writing(clean_db, tmp_path, capsys):
    from chalicelib.ingest.__main__ import main

    solutions, metafits = fixture_files()
    assert main(["--metafits", str(tmp_path / "nope.fits"), str(solutions[0])]) == 1
    assert "no such file" in capsys.readouterr().err
    garbage = tmp_path / "garbage_solutions.fits"
    garbage.write_bytes(b"not a FITS file at all")
    assert main(["--metafits", str(metafits), "--no-progress", str(garbage)]) == 1
    assert "cannot ingest these files" in capsys.readouterr().err
    assert _count("SELECT count(*) AS n FROM calibration_fits") == 0


def test_plain_progress_without_tqdm(monkeypatch):
    from chalicelib.ingest.__main__ import progress_bar

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    stream = io.StringIO()
    with progress_bar(2, "reading", stream=stream) as update:
        update("a")
        update("b")
    assert stream.getvalue() == "reading: 1/2\nreading: 2/2\n"
