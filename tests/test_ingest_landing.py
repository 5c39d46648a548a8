"""A real hyperdrive fit landing in the calibration bucket: manifest -> fit -> rows -> callbacks -> served.

The 24 solution files and the metafits of obs 1369821496 are uploaded to the moto calibration
bucket with a manifest, and the manifest's S3 event is handed to on_cal_file (as Lambda would).
The originals the served .bin is compared with are read with astropy in tests/real_fit.py (the
``originals`` fixture), and the zip and .bin with tests/served_files.py, independently of the
code under test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from chalice.test import Client

from tests.mwa_files import mwa_file
from tests.real_fit import fixture_files
from tests.requests_support import s3_event, sqs_record
from tests.served_files import fetch_zip, read_bin

CAL = 1369821496
FITID = 1685856000123456
PREFIX = f"fits/{CAL}/{FITID}/"
FINISHED = "2023-06-04T05:20:00Z"
ARRAYS = ("x_gains", "y_gains", "x_gains_pol0", "x_gains_pol1", "y_gains_pol0", "y_gains_pol1",
          "x_gains_sigma_resid", "y_gains_sigma_resid")
SCALARS = ("x_delay_m", "x_intercept", "y_delay_m", "y_intercept", "x_phase_sigma_resid", "x_phase_chi2dof",
           "x_phase_fit_quality", "y_phase_sigma_resid", "y_phase_chi2dof", "y_phase_fit_quality",
           "x_gains_fit_quality", "y_gains_fit_quality")


@pytest.fixture(scope="module")
def fixture_bytes() -> dict[str, bytes]:
    solutions, metafits = fixture_files()
    files = {p.name: p.read_bytes() for p in solutions}
    files[metafits.name] = metafits.read_bytes()
    return files


def _manifest(names: list[str], metafits: str = f"{CAL}_metafits.fits", **extra) -> bytes:
    return json.dumps({"solutions": names, "metafits": metafits, **extra}).encode()


def _upload(aws, files: dict[str, bytes], prefix: str = PREFIX) -> None:
    for name, body in files.items():
        aws["s3"].put_object(Bucket="test-cal", Key=prefix + name, Body=body)


def _land_manifest(aws, manifest: bytes, prefix: str = PREFIX):
    """Upload the manifest (last) and hand its S3 notification to on_cal_file, as Lambda would."""
    from app import app

    key = prefix + "manifest.json"
    aws["s3"].put_object(Bucket="test-cal", Key=key, Body=manifest)
    return app.handler_map["on_cal_file"](s3_event(key, event_time="2023-06-04T05:21:00.000Z"), None)


def _request(receiver_url: str | None, key: str = "req-1", cal: int = CAL) -> None:
    """A calibration request waiting for the calibrator (stored by the SQS handler)."""
    from app import app

    msg = {"version": 1, "request_key": key, "obs_id": cal, "cal_id": cal, "asvo_job_id": 7,
           "callback_url": receiver_url}
    app.handler_map["store_request"]({"Records": [sqs_record(msg, f"m-{key}")]}, None)


def _solution_names(fixture_bytes: dict[str, bytes]) -> list[str]:
    return sorted(n for n in fixture_bytes if n.startswith("hyp_soln_"))


@pytest.fixture
def landed(clean_db, aws, callback_env, receiver, fixture_bytes):
    """The real fit uploaded and its manifest landed, with one request (callback URL) waiting for it."""
    _request(receiver.url)
    _upload(aws, fixture_bytes)
    manifest = _manifest(_solution_names(fixture_bytes), creator="calvin-test", finished_datetime=FINISHED)
    report = _land_manifest(aws, manifest)
    return {"report": report, "manifest": manifest, "receiver": receiver}


def _all_nan(row: dict) -> bool:
    return all(row[c] is not None and math.isnan(row[c]) for c in SCALARS) and all(
        row[c] is not None and len(row[c]) == 24 and all(math.isnan(v) for v in row[c]) for c in ARRAYS)


def _metafits_flagged_tiles() -> set[int]:
    from astropy.io import fits

    with fits.open(mwa_file(str(CAL), f"{CAL}_metafits.fits")) as hdus:
        td = hdus["TILEDATA"].data
        return {int(t) for t, f in zip(td["Tile"], td["Flag"]) if int(f)}


def test_manifest_landing_writes_the_fit_its_rows_the_calibrator_and_its_file(landed):
    from chalicelib import db

    [report] = landed["report"]
    assert report["key"] == PREFIX + "manifest.json" and report["success"] is True
    assert report["ingest"]["written"] is True
    assert (report["ingest"]["rows"], report["ingest"]["nan_rows"], report["ingest"]["reference_tile"]) == (144, 18, 11)

    [fit] = db.query("SELECT * FROM calibration_fits")
    assert (fit["fitid"], fit["obsid"], fit["creator"]) == (FITID, CAL, "calvin-test")
    assert fit["fit_time"].isoformat() == "2023-06-04T05:20:00+00:00"
    assert fit["code_version"] == "Created by mwa_hyperdrive v0.2.1"  # hyperdrive SOFTWARE
    assert (fit["fit_niter"], fit["fit_limit"]) == (50, 1e-8)  # MAXITER, S_THRESH
    assert fit["source_list"].endswith("model-HydA-58comp.txt")
    assert fit["calibration_command"].startswith("hyperdrive di-calibrate")

    rows = db.query("SELECT * FROM calibration_solutions WHERE fitid = :f AND obsid = :o ORDER BY tileid",
                    {"f": FITID, "o": CAL})
    assert len(rows) == 144
    nan_tiles = {r["tileid"] for r in rows if _all_nan(r)}
    assert len(nan_tiles) == 18 and nan_tiles == _metafits_flagged_tiles()
    ref = next(r for r in rows if r["tileid"] == 11)
    assert (ref["x_delay_m"], ref["x_intercept"], ref["y_delay_m"], ref["y_intercept"]) == (0.0, 0.0, 0.0, 0.0)
    assert all(math.isfinite(r["x_delay_m"]) and math.isfinite(r["y_delay_m"]) for r in rows
               if r["tileid"] not in nan_tiles)

    # the calibrator observation, from its metafits (it was not in the database)
    [obs] = db.query("SELECT m.obsname, s.calibration, s.calibrators, r.frequencies, r.gain_control_value"
                     " FROM mwa_setting m JOIN schedule_metadata s ON s.observation_number = m.starttime"
                     " JOIN rf_stream r ON r.starttime = m.starttime WHERE m.starttime = :o", {"o": CAL})
    assert (obs["obsname"], obs["calibration"], obs["calibrators"]) == ("AllSky_cal_HydA", True, "HydA")
    assert obs["frequencies"] == list(range(55, 171, 5)) and obs["gain_control_value"] == 1.0
    assert db.query("SELECT count(*) AS n FROM observation_tile WHERE obsid = :o", {"o": CAL})[0]["n"] == 144

    [ff] = db.query("SELECT * FROM calibration_fit_file")
    assert (ff["fitid"], ff["obsid"], ff["kind"]) == (FITID, CAL, "hyperdrive")
    assert ff["bucket_key"] == PREFIX + "hyp_soln_1369821496_ch100_solutions.fits"  # the first listed


def test_the_waiting_request_gets_one_success_callback_and_a_repeat_writes_nothing(landed, aws):
    from chalicelib import db
    from chalicelib.db import requests as q

    receiver = landed["receiver"]
    [got] = receiver.received
    body = got.json()
    assert body["success"] is True and body["cal_id"] == CAL and body["asvo_job_id"] == 7
    assert body["finished_datetime"] == FINISHED
    assert str(FITID) in body["message"] and "144 tiles" in body["message"] and "18 flagged" in body["message"]
    [req] = q.requests_for(CAL)
    assert req["calibration_fit_id"] == FITID and req["calibration_completed_datetime"] is not None
    assert req["callback_state"] == "delivered"

    # S3 delivers the manifest's event again: nothing is written, nothing sent twice
    [again] = _land_manifest(aws, landed["manifest"])
    assert again["ingest"] == {"written": False, "reason": "fit already in the database"}
    assert again["requests"] == [] and again["callbacks"] == []
    assert db.query("SELECT count(*) AS n FROM calibration_fits")[0]["n"] == 1
    assert db.query("SELECT count(*) AS n FROM calibration_solutions")[0]["n"] == 144
    assert len(receiver.received) == 1

    # a request added now is answered at once from the ingested fit
    _request(receiver.url, key="req-2")
    assert len(receiver.received) == 2 and receiver.received[-1].json()["success"] is True


def test_get_cal_solution_serves_a_bin_matching_the_original_solutions(landed, originals):
    from app import app

    with Client(app) as client:
        fits_answer = client.http.get(f"/calib/get_cal_fits?obs_id={CAL}&max_time_separation=0")
        assert fits_answer.status_code == 200, fits_answer.body
        assert json.loads(fits_answer.body) == {
            str(FITID): [CAL, 0, PREFIX + "hyp_soln_1369821496_ch100_solutions.fits"]}
        z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={CAL}&max_time_separation=0")
    jones, start, end = read_bin(z.read(f"{CAL}.bin"))
    assert jones.shape == (1, 144, 768, 4) and (start, end) == (CAL, CAL + 120)
    got = jones[0]  # metafits Antenna order, 768 channel centres = the chanblock frequencies

    J = originals["jones"]
    tile_of = list(originals["tile_of"])
    ref = tile_of.index(11)
    name_of = originals["name_of"]
    flagged = originals["flagged"]
    assert np.isnan(got[flagged]).all() and np.isfinite(got[~flagged][:, originals["usable"]]).all()
    assert [int(a) for a in z.read(f"{CAL}_flagged_tiles.txt").decode().split()] == np.flatnonzero(flagged).tolist()

    freqs = originals["freqs"]
    long_baseline = set()
    for p in (0, 3):
        ratios = []
        for ant in np.flatnonzero(~flagged):
            ok = originals["usable"] & np.isfinite(J[ant, :, p]) & np.isfinite(J[ref, :, p])
            ratios.append(np.abs(J[ant, ok, p]) / np.abs(got[ant, ok, p]))  # |J| x gain
            if ant == ref:
                assert np.allclose(np.angle(got[ant, :, p]), 0.0)
                continue
            divided = J[ant, ok, p] * np.conj(J[ref, ok, p]) / np.abs(J[ref, ok, p])
            diff = np.angle(divided * np.conj(got[ant, ok, p]))
            rms = float(np.sqrt(np.mean(diff**2)))
            design = np.c_[np.ones(ok.sum()), freqs[ok] / 1e8]
            coef, *_ = np.linalg.lstsq(design, diff, rcond=None)
            best = float(np.sqrt(np.mean((diff - design @ coef) ** 2)))  # the best any line can do
            if name_of[ant].startswith("LB") and best >= 0.19:
                long_baseline.add(ant)
                assert rms <= 1.1 * best, (p, name_of[ant], rms, best)
            else:
                assert rms < 0.2, (p, name_of[ant], rms, best)
        median = float(np.median(np.concatenate(ratios)))
        assert abs(median - 1.0) < 0.01, (p, median)
    assert len(long_baseline) == 14


# --- failures: told to the requests, never raised -------------------------------------------------

def _failure(receiver) -> dict:
    [got] = receiver.received
    body = got.json()
    assert body["success"] is False
    return body


def _nothing_written() -> None:
    from chalicelib import db

    for table in ("calibration_fits", "calibration_solutions", "calibration_fit_file", "mwa_setting"):
        assert db.query(f"SELECT count(*) AS n FROM {table}")[0]["n"] == 0, table


@pytest.mark.parametrize("case", ["missing file", "not json", "path name", "bad solutions", "other metafits",
                                  "bad time"])
def test_a_bad_landing_fails_the_requests_with_a_reason_and_writes_nothing(
        case, clean_db, aws, callback_env, receiver, fixture_bytes):
    from chalicelib.db import requests as q

    _request(receiver.url)
    metafits = f"{CAL}_metafits.fits"
    names = _solution_names(fixture_bytes)[:2]
    files = {metafits: fixture_bytes[metafits], **{n: fixture_bytes[n] for n in names}}
    manifest = _manifest(names)
    expect = ""
    if case == "missing file":
        del files[names[1]]
        expect = f"not in s3://test-cal: {PREFIX}{names[1]}"
    elif case == "not json":
        manifest = b"solutions: all of them"
        expect = "the manifest is not JSON"
    elif case == "path name":
        manifest = _manifest(["../../other/x.fits"])
        expect = "a plain file name"
    elif case == "bad solutions":
        files[names[0]] = b"SIMPLE  =   this is not FITS"
        expect = "the solution files cannot be read"
    elif case == "other metafits":
        files[metafits] = mwa_file("1365977896", "1365977896_metafits.fits").read_bytes()
        expect = "metafits of observation 1365977896, not of 1369821496"
    elif case == "bad time":
        manifest = _manifest(names, finished_datetime="yesterday")
        expect = "not ISO 8601"
    _upload(aws, files)
    [report] = _land_manifest(aws, manifest)  # returns: the handler does not crash
    assert report["success"] is False and report["ingest"]["written"] is False
    body = _failure(receiver)
    assert body["message"].startswith(f"calibration fit {FITID} of calibrator observation {CAL} could not be ingested")
    assert expect in body["message"], body["message"]
    [req] = q.requests_for(CAL)
    assert req["calibration_error_datetime"] is not None and req["calibration_completed_datetime"] is None
    assert req["calibration_fit_id"] == FITID
    _nothing_written()


def test_an_s3_outage_is_raised_for_a_retry_and_tells_nobody(clean_db, aws, callback_env, receiver,
                                                              fixture_bytes, monkeypatch):
    from chalicelib import storage
    from chalicelib.errors import StorageUnavailable

    _request(receiver.url)
    real = storage.get_object

    def flaky(bucket, key):
        if key.endswith(".fits"):
            raise StorageUnavailable(f"cannot read s3://{bucket}/{key}")
        return real(bucket, key)

    monkeypatch.setattr(storage, "get_object", flaky)
    with pytest.raises(StorageUnavailable):
        _land_manifest(aws, _manifest(_solution_names(fixture_bytes)))
    assert receiver.received == []
    _nothing_written()


def test_other_fit_files_in_the_same_event_still_run_when_one_fails(clean_db, aws, callback_env, receiver,
                                                                    monkeypatch):
    """Two records in one event: the first (an outage) does not stop the second; then the event is retried."""
    from app import app
    from chalicelib.errors import DatabaseUnavailable
    from chalicelib.ingest import landing, layout

    other_cal = 1369000000
    _request(receiver.url, key="req-other", cal=other_cal)

    def down(landed, context=None):
        raise DatabaseUnavailable("the database is down")

    monkeypatch.setattr(landing, "ingest_manifest", down)
    manifest_key = layout.manifest_key(CAL, FITID)
    solutions_key = layout.solutions_key(other_cal, FITID)
    for key in (manifest_key, solutions_key):
        aws["s3"].put_object(Bucket="test-cal", Key=key, Body=b"{}")
    event = s3_event(manifest_key)
    event["Records"] += s3_event(solutions_key)["Records"]
    with pytest.raises(DatabaseUnavailable):
        app.handler_map["on_cal_file"](event, None)
    [got] = receiver.received  # the second record's fit finished all the same
    assert got.json()["cal_id"] == other_cal and got.json()["success"] is True


def test_the_manifest_key_is_part_of_the_layout():
    from chalicelib.ingest import layout

    f = layout.parse_key(layout.manifest_key(CAL, FITID))
    assert (f.cal_id, f.fitid, f.kind, f.finishes_fit, f.prefix) == (CAL, FITID, "manifest", True, PREFIX)
    assert layout.parse_key(f"{PREFIX}sub/manifest.json") is None
    assert layout.parse_key(f"{PREFIX}manifest.json.tmp").kind == "other"


@pytest.mark.parametrize("doc, reason", [
    ({"metafits": "m.fits"}, 'no "solutions" list'),
    ({"solutions": [], "metafits": "m.fits"}, 'no "solutions" list'),
    ({"solutions": ["a.fits"]}, "names a file by None"),
    ({"solutions": ["a.fits", "a.fits"], "metafits": "m.fits"}, "names a file twice"),
    ({"solutions": ["a.fits"], "metafits": "a.fits"}, "names a file twice"),
    ({"solutions": ["dir/a.fits"], "metafits": "m.fits"}, "a plain file name"),
    ({"solutions": ["manifest.json"], "metafits": "m.fits"}, "a plain file name"),
    ({"solutions": ["a.fits"], "metafits": "m.fits", "creator": 5}, "creator must be a string"),
    ([1, 2], "not a JSON object"),
])
def test_manifest_parsing_refuses_what_it_cannot_use(doc, reason):
    from chalicelib.ingest.layout import LandingError, Manifest

    with pytest.raises(LandingError, match=reason):
        Manifest.parse(json.dumps(doc).encode())


def test_manifest_parsing_reads_the_optional_fields():
    from datetime import UTC, datetime

    from chalicelib.ingest.layout import Manifest

    m = Manifest.parse(json.dumps({"solutions": "band.fits", "metafits": "m.fits", "creator": " calvin ",
                                   "code_version": "1.2", "finished_datetime": "2025-06-01T20:34:56+08:00",
                                   "future_key": [1]}).encode())
    assert m == Manifest(solutions=("band.fits",), metafits="m.fits", creator="calvin", code_version="1.2",
                         finished=datetime(2025, 6, 1, 12, 34, 56, tzinfo=UTC))
    assert Manifest.parse(b'{"solutions": ["a.fits"], "metafits": "m.fits"}').finished is None


def test_readme_documents_the_manifest():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "fits/<cal_id>/<fitid>/manifest.json" in readme and "python -m chalicelib.ingest" in readme
