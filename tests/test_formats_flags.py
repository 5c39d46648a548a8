"""Flagged-tile list and CASA flag script: what users read and run."""

from __future__ import annotations

import sys

import pytest

from chalicelib.formats.flags import casa_flag_script, flagged_tiles_text


def _run_script(script: str, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict], dict]:
    """Execute the script as CASA would, with a fake flagdata recording its keyword arguments."""
    calls: list[dict] = []

    def flagdata(**kwargs):  # CASA's task is called with keywords only
        calls.append(kwargs)

    monkeypatch.setattr(sys, "argv", argv)
    namespace = {"flagdata": flagdata, "__name__": "__main__"}
    exec(compile(script, "1369821496_flags.py", "exec"), namespace)
    return calls, namespace


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


def test_casa_script_flags_each_tile_in_the_ms_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    script = casa_flag_script(1369821496, ["Tile025", "HexS17", "LBA1"])
    # `casa -c script.py /data/obs.ms`: casa's own arguments come first, the script, then ours
    argv = ["casa", "--nologger", "-c", "1369821496_flags.py", "/data/1369821496.ms"]
    calls, _ = _run_script(script, argv, monkeypatch)
    assert calls == [
        {"vis": "/data/1369821496.ms", "mode": "manual", "antenna": "Tile025"},
        {"vis": "/data/1369821496.ms", "mode": "manual", "antenna": "HexS17"},
        {"vis": "/data/1369821496.ms", "mode": "manual", "antenna": "LBA1"},
    ]


def test_casa_script_takes_the_last_ms_argument_and_strips_a_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    script = casa_flag_script(1369821496, ["Tile011"])
    calls, _ = _run_script(script, ["1369821496_flags.py", "old.ms", "new.ms/", "--verbose"], monkeypatch)
    assert calls == [{"vis": "new.ms", "mode": "manual", "antenna": "Tile011"}]


def test_casa_script_defaults_to_obsid_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    script = casa_flag_script(1369821496, ["Tile011"])
    calls, _ = _run_script(script, ["casa", "-c", "1369821496_flags.py"], monkeypatch)
    assert calls == [{"vis": "1369821496.ms", "mode": "manual", "antenna": "Tile011"}]


def test_casa_script_header_names_the_observation() -> None:
    script = casa_flag_script(1369821496, ["Tile011"])
    header = [line for line in script.splitlines() if line.startswith("#")]
    assert header and "1369821496" in header[0]


def test_casa_script_with_no_flagged_tiles_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls, _ = _run_script(casa_flag_script(1369821496, []), ["casa", "-c", "x.py", "a.ms"], monkeypatch)
    assert calls == []


def test_hostile_tile_names_stay_inside_their_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["Tile'); import os; os.system('x') #", 'Q"uote', "new\nline = 1", "back\\slash"]
    script = casa_flag_script(1369821496, names)
    calls, namespace = _run_script(script, ["casa", "-c", "x.py", "a.ms"], monkeypatch)
    assert [c["antenna"] for c in calls] == names
    assert "os" not in namespace and "line" not in namespace
