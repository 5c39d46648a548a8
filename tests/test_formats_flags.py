"""Flagged-tile list and CASA flag script: what users read and run (the script's logic, with stand-ins for CASA).

tests/test_casa_flags.py runs the same script in real CASA.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.formats.flags import casa_flag_script, flagged_tiles_text
from tests.flag_script import fake_ms, run_script, selected_tiles, tiles_flagged

OBS = 1369821496
MS_TILES = ["Tile011", "Tile025", "HexS1", "HexS17", "LBA1", "LBG6"]


def test_flagged_tiles_text_one_index_per_line() -> None:
    text = flagged_tiles_text([77, 3, 120, 3])
    assert text == "3\n77\n120\n"
    # as user scripts read it: first column of each line, as integers
    assert [int(line.split()[0]) for line in text.splitlines()] == [3, 77, 120]


def test_flagged_tiles_text_empty() -> None:
    assert flagged_tiles_text([]) == ""


def test_flagged_tiles_text_refuses_negative() -> None:
    with pytest.raises(ValueError):
        flagged_tiles_text([-1, 4])


def test_one_flagdata_call_selects_every_baseline_of_the_tiles_autocorrelations_included(tmp_path: Path) -> None:
    ms = fake_ms(tmp_path / "data" / f"{OBS}.ms", MS_TILES)
    script = casa_flag_script(OBS, ["Tile025", "HexS17", "LBA1"])
    # `casa -c script.py /data/obs.ms`: casa's own arguments come first, the script, then ours
    run = run_script(script, ["casa", "--nologger", "-c", f"{OBS}_flags.py", str(ms)])
    # CASA: a bare name selects a tile's cross-correlations only; '&&*' adds its autocorrelation
    assert run.calls == [{"vis": str(ms), "mode": "manual", "antenna": "Tile025,HexS17,LBA1&&*", "flagbackup": True}]
    assert selected_tiles(run.calls[0]["antenna"], MS_TILES) == ["Tile025", "HexS17", "LBA1"]


def test_the_last_measurement_set_argument_wins_whatever_its_name(tmp_path: Path) -> None:
    old = fake_ms(tmp_path / "old.ms", MS_TILES)
    new = fake_ms(tmp_path / "my data" / "obs_1369821496.MS", MS_TILES)  # not ending in lowercase .ms
    (tmp_path / "rc").mkdir()  # a directory that is not a measurement set (casa's --rcdir)
    argv = ["casa", "-c", f"{OBS}_flags.py", str(old), f"{new}/", "--rcdir", str(tmp_path / "rc"),
            str(tmp_path / "missing.ms")]
    run = run_script(casa_flag_script(OBS, ["Tile011"]), argv)
    assert [c["vis"] for c in run.calls] == [str(new)]
    assert f"Measurement set: {new}" in run.stdout.splitlines()


def test_without_an_argument_the_measurement_set_is_obsid_ms_here(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ms(tmp_path / f"{OBS}.ms", MS_TILES)
    monkeypatch.chdir(tmp_path)
    run = run_script(casa_flag_script(OBS, ["Tile011"]), ["casa", "-c", f"{OBS}_flags.py"])
    assert [c["vis"] for c in run.calls] == [f"{OBS}.ms"]


def test_no_measurement_set_stops_with_a_message_and_flags_nothing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not_an.ms").mkdir()
    run = run_script(casa_flag_script(OBS, ["Tile011"]), ["casa", "-c", "x.py", str(tmp_path / "not_an.ms")])
    assert run.calls == []
    assert run.exit_message and "No measurement set among the command-line arguments" in run.exit_message
    assert "not_an.ms" in run.exit_message and "Usage: casa -c" in run.exit_message


def test_tiles_the_measurement_set_lacks_are_skipped_and_reported(tmp_path: Path) -> None:
    ms = fake_ms(tmp_path / "sub.ms", ["Tile011", "Tile012", "Tile013"])  # a subarray of the calibrator's tiles
    run = run_script(casa_flag_script(OBS, ["Tile099", "Tile012", "Tile200", "Tile013"]), ["x.py", str(ms)])
    assert [selected_tiles(c["antenna"], ["Tile011", "Tile012", "Tile013"]) for c in run.calls] == [
        ["Tile012", "Tile013"]]
    lines = run.stdout.splitlines()
    assert "Flagged 2 tile(s), every baseline and autocorrelation: Tile012, Tile013" in lines
    assert "Skipped 2 tile(s) the measurement set lacks: Tile099, Tile200" in lines


def test_none_of_the_tiles_in_the_measurement_set_flags_nothing(tmp_path: Path) -> None:
    ms = fake_ms(tmp_path / "sub.ms", ["Tile011"])
    run = run_script(casa_flag_script(OBS, ["Tile099"]), ["x.py", str(ms)])
    assert run.calls == []
    assert "Flagged no tile." in run.stdout.splitlines()
    assert "Skipped 1 tile(s) the measurement set lacks: Tile099" in run.stdout.splitlines()


def test_run_by_python_it_imports_flagdata_from_casatasks(tmp_path: Path) -> None:
    ms = fake_ms(tmp_path / "a.ms", MS_TILES)
    run = run_script(casa_flag_script(OBS, ["LBG6"]), ["1369821496_flags.py", str(ms)], with_flagdata=False)
    assert [c["antenna"] for c in run.calls] == ["LBG6&&*"]


def test_casa_script_header_names_the_observation_the_tiles_and_the_usage() -> None:
    script = casa_flag_script(OBS, ["Tile011", "HexS1"], note="Gains: ATTEN_DB\ncorrected")
    header = [line for line in script.splitlines() if line.startswith("#")]
    assert header and "1369821496" in header[0]
    assert "#   'Tile011'" in header and "#   'HexS1'" in header
    assert "# Note: Gains: ATTEN_DB corrected" in header  # one line, whatever the note's line breaks
    assert f"# Usage: casa -c {OBS}_flags.py /path/to/measurement_set" in header


def test_casa_script_with_no_flagged_tiles_does_nothing(tmp_path: Path) -> None:
    run = run_script(casa_flag_script(OBS, []), ["casa", "-c", "x.py", str(tmp_path / "nowhere.ms")])
    assert run.calls == [] and run.exit_message is None
    assert "No tiles to flag." in run.stdout


def test_hostile_tile_names_stay_inside_their_strings(tmp_path: Path) -> None:
    names = ["Tile'); BROKEN_OUT = 1 #", 'Q"uote', "new\nline = 1", "back\\slash", "\u2028para = 1"]
    note = "fine\nBROKEN_NOTE = 1\r\x00"
    script = casa_flag_script(OBS, names, note=note)
    ms = fake_ms(tmp_path / "odd.ms", ["Tile011", *names])
    run = run_script(script, ["casa", "-c", "x.py", str(ms)])
    assert run.namespace["TILES"] == names
    assert not {"BROKEN_OUT", "BROKEN_NOTE", "line", "para"} & set(run.namespace)
    # names CASA's selection syntax would take apart are selected by antenna index instead
    assert [c["antenna"] for c in run.calls] == ["1,2,3,4,5&&*"]
    assert selected_tiles(run.calls[0]["antenna"], ["Tile011", *names]) == names


def test_an_odd_name_whose_index_is_another_antennas_name_is_reported_not_misflagged(tmp_path: Path) -> None:
    ms = fake_ms(tmp_path / "odd.ms", ["1", "Hex~S2", "Tile011"])  # 'Hex~S2' is antenna 1, but '1' names antenna 0
    run = run_script(casa_flag_script(OBS, ["Hex~S2", "Tile011"]), ["x.py", str(ms)])
    assert [c["antenna"] for c in run.calls] == ["Tile011&&*"]
    assert "Skipped 1 tile(s) CASA cannot select by name or index: Hex~S2" in run.stdout.splitlines()


def test_tiles_flagged_reads_the_script_back(tmp_path: Path) -> None:
    """The helper other tests use to ask which tiles a downloaded script flags."""
    script = casa_flag_script(OBS, ["HexS17", "Tile999"])
    assert tiles_flagged(script, MS_TILES, tmp_path) == ["HexS17"]
