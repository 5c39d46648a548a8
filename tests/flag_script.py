"""Run a ``<obs>_flags.py`` outside CASA: a recording ``flagdata``, a stand-in ``casatools.table``, a fake MS.

The fake measurement set is a folder shaped like one (``table.dat``, ``ANTENNA/``) whose ANTENNA
names the stand-in table reads from ``ANTENNA/names.json``. The real thing is checked in real CASA
by tests/test_casa_flags.py; these fakes check the script's own logic quickly.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ScriptRun:
    """What one run did: flagdata's keyword arguments per call, what it printed, its globals."""

    calls: list[dict] = field(default_factory=list)
    stdout: str = ""
    namespace: dict = field(default_factory=dict)
    exit_message: str | None = None  # sys.exit's argument, when the script stopped with one


def fake_ms(path: Path, antenna_names: Iterable[str]) -> Path:
    """A folder the script takes for a measurement set with these antennas (in antenna-index order)."""
    (path / "ANTENNA").mkdir(parents=True)
    (path / "table.dat").write_bytes(b"")
    (path / "ANTENNA" / "table.dat").write_bytes(b"")
    (path / "ANTENNA" / "names.json").write_text(json.dumps(list(antenna_names)))
    return path


class _Table:
    """casatools.table, as far as the script uses it: open a table, read its NAME column."""

    def open(self, path: str) -> None:
        self._names = json.loads((Path(path) / "names.json").read_text())

    def getcol(self, column: str) -> list[str]:
        assert column == "NAME"
        return list(self._names)

    def close(self) -> None:
        self._names = None


def run_script(script: str, argv: list[str], *, with_flagdata: bool = True) -> ScriptRun:
    """Execute the script as ``casa -c`` does (``flagdata`` a global) with this ``sys.argv``.

    Without ``with_flagdata`` the script must import it from (a stand-in) ``casatasks``, as under python.
    """
    run = ScriptRun()

    def flagdata(**kwargs):  # CASA's task is called with keywords only
        run.calls.append(kwargs)
        return {}

    casatools = types.ModuleType("casatools")
    casatools.table = _Table
    casatasks = types.ModuleType("casatasks")
    casatasks.flagdata = flagdata
    saved_argv, saved = sys.argv, {m: sys.modules.get(m) for m in ("casatools", "casatasks")}
    sys.argv, sys.modules["casatools"], sys.modules["casatasks"] = list(argv), casatools, casatasks
    run.namespace = {"__name__": "__main__", **({"flagdata": flagdata} if with_flagdata else {})}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(script, "flags.py", "exec"), run.namespace)
    except SystemExit as stop:
        run.exit_message = None if stop.code in (None, 0) else str(stop.code)
    finally:
        sys.argv = saved_argv
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    run.stdout = out.getvalue()
    return run


def selected_tiles(antenna: str, ms_names: list[str]) -> list[str]:
    """Read a CASA antenna selection of the script's form, ``'A,B&&*'``, back into tile names.

    A bare name would select only cross-correlations, so the ``&&*`` must be there; a token that is
    not an antenna name is an antenna index.
    """
    assert antenna.endswith("&&*"), antenna
    tokens = antenna[: -len("&&*")].split(",")
    return [t if t in ms_names else ms_names[int(t)] for t in tokens]


def tiles_flagged(script: str, ms_names: list[str], folder: Path) -> list[str]:
    """The tiles the script flags in a measurement set of these antennas, made in a new folder under ``folder``."""
    ms = fake_ms(Path(tempfile.mkdtemp(dir=folder)) / "fake.ms", ms_names)
    run = run_script(script, ["casa", "-c", "flags.py", str(ms)])
    assert run.exit_message is None, run.exit_message
    assert len(run.calls) <= 1, run.calls
    for call in run.calls:
        assert (call["vis"], call["mode"]) == (str(ms), "manual"), call
    return [t for call in run.calls for t in selected_tiles(call["antenna"], ms_names)]
