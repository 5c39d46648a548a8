"""Where an observation's tiles and metadata come from: the database, the stored metafits, the metadata service.

Real PostgreSQL, moto S3, and the devstack metadata server (a real HTTP server on loopback) serving
the real fixture metafits; the tiles are compared with TILEDATA read straight from those files.
"""

from __future__ import annotations

import os

import pytest

from chalicelib import db, metadata
from chalicelib.db import writes
from chalicelib.errors import BadRequest
from tests import factories
from tests.metadata_support import (FETCHED, STORED, as_tuples, metafits_path, primary_header, tiledata)

PRODUCTS = "test-products"


def stored_key(obsid: int) -> str:
    return f"metadata/{obsid}_metafits.fits"


def stored_body(aws, obsid: int) -> bytes | None:
    try:
        return aws["s3"].get_object(Bucket=PRODUCTS, Key=stored_key(obsid))["Body"].read()
    except aws["s3"].exceptions.NoSuchKey:
        return None


def tile_rows(obsid: int) -> int:
    return db.query("SELECT count(*) AS n FROM observation_tile WHERE obsid = :o", {"o": obsid})[0]["n"]


def test_tiles_come_from_the_database_when_it_has_them(clean_db, aws, local_metadata):
    seeded = factories.tiles(16)
    with db.transaction() as tx:
        writes.insert_observation(tx, factories.observation(FETCHED, tiles=seeded))

    assert metadata.observation_tiles(FETCHED) == seeded
    assert local_metadata.requests == []  # the metadata service was not asked
    assert stored_body(aws, FETCHED) is None


def test_tiles_come_from_the_stored_metafits_without_asking_the_service(clean_db, aws, local_metadata):
    aws["s3"].put_object(Bucket=PRODUCTS, Key=stored_key(STORED), Body=metafits_path(STORED).read_bytes())

    tiles = metadata.observation_tiles(STORED)

    assert as_tuples(tiles) == tiledata(STORED)
    assert len(tiles) == 144 and sum(t.flagged for t in tiles) == 18 and len({t.rx for t in tiles}) == 18
    assert local_metadata.requests == []


def test_tiles_fetched_from_the_metadata_service_are_stored_and_not_fetched_again(clean_db, aws, local_metadata):
    first = metadata.observation_tiles(FETCHED)

    assert as_tuples(first) == tiledata(FETCHED)
    assert local_metadata.requests == [f"/metadata/fits?obs_id={FETCHED}"]
    assert stored_body(aws, FETCHED) == metafits_path(FETCHED).read_bytes()

    second = metadata.observation_tiles(FETCHED)

    assert second == first
    assert len(local_metadata.requests) == 1  # the stored copy answered
    assert tile_rows(FETCHED) == 0  # the database was not written


def test_a_stored_copy_of_another_observation_is_replaced_by_a_fetch(clean_db, aws, local_metadata):
    aws["s3"].put_object(Bucket=PRODUCTS, Key=stored_key(FETCHED), Body=metafits_path(STORED).read_bytes())

    assert as_tuples(metadata.observation_tiles(FETCHED)) == tiledata(FETCHED)
    assert len(local_metadata.requests) == 1
    assert stored_body(aws, FETCHED) == metafits_path(FETCHED).read_bytes()


def test_an_observation_the_service_does_not_know_is_a_400_on_obs_id(clean_db, aws, local_metadata):
    with pytest.raises(BadRequest) as caught:
        metadata.observation_tiles(1234567890)

    assert caught.value.status == 400 and caught.value.parameter == "obs_id"
    assert "1234567890" in caught.value.message and "404" in caught.value.message
    assert stored_body(aws, 1234567890) is None


def test_with_the_service_disabled_an_unknown_tile_list_stays_empty(clean_db, aws, local_metadata, monkeypatch):
    monkeypatch.setenv("CALIB_METADATA_URL", "")

    assert metadata.observation_tiles(FETCHED) == []
    assert metadata.observation_meta(FETCHED) is None
    assert local_metadata.requests == []


def test_the_fetch_works_with_a_read_only_database_role(clean_db, aws, local_metadata, monkeypatch):
    role = f"calib_ro_test_{os.getpid()}"
    db.execute(f"DROP ROLE IF EXISTS {role}")
    db.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'ro-test'")
    db.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        monkeypatch.setenv("CALIB_DB_USER", role)
        monkeypatch.setenv("CALIB_DB_PASSWORD", "ro-test")
        assert db.query("SELECT current_user AS u")[0]["u"] == role
        with pytest.raises(Exception, match="permission denied"):  # the role really cannot write
            db.execute("DELETE FROM observation_tile")

        assert as_tuples(metadata.observation_tiles(FETCHED)) == tiledata(FETCHED)
        assert metadata.observation_meta(FETCHED).obsid == FETCHED
    finally:
        monkeypatch.undo()
        db.close()
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")
    assert tile_rows(FETCHED) == 0


def test_observation_meta_from_the_metafits_when_the_database_lacks_the_observation(clean_db, aws, local_metadata):
    header = primary_header(FETCHED)

    obs = metadata.observation_meta(FETCHED)

    assert obs.obsid == header["GPSTIME"] == FETCHED
    assert obs.stoptime == FETCHED + header["EXPOSURE"]
    assert obs.obsname == header["FILENAME"].strip()
    assert obs.channels == list(range(157, 181)) == sorted(int(c) for c in header["CHANNELS"].split(","))
    assert obs.gain_control_value == header["ATTEN_DB"]
    assert as_tuples(obs.tiles) == tiledata(FETCHED)


def test_observation_meta_keeps_the_database_values_and_fills_in_what_it_lacks(clean_db, aws, local_metadata):
    db.execute("INSERT INTO mwa_setting (starttime, stoptime, obsname) VALUES (:o, :s, 'as_the_schedule_names_it')",
               {"o": FETCHED, "s": FETCHED + 600})  # no rf_stream row, no tiles

    obs = metadata.observation_meta(FETCHED)

    assert (obs.obsname, obs.stoptime) == ("as_the_schedule_names_it", FETCHED + 600)
    assert obs.channels == list(range(157, 181))
    assert obs.gain_control_value == primary_header(FETCHED)["ATTEN_DB"]
    assert as_tuples(obs.tiles) == tiledata(FETCHED)
    assert len(local_metadata.requests) == 1


def test_observation_meta_asks_nothing_when_the_database_has_it_all(clean_db, aws, local_metadata):
    seeded = factories.observation(FETCHED, gain=9.0, channels=range(109, 133), tiles=factories.tiles(8))
    with db.transaction() as tx:
        writes.insert_observation(tx, seeded)

    obs = metadata.observation_meta(FETCHED)

    assert (obs.channels, obs.gain_control_value, obs.tiles) == (list(range(109, 133)), 9.0, seeded.tiles)
    assert local_metadata.requests == []
    assert stored_body(aws, FETCHED) is None
