"""Flagged-tile outputs: the plain ``<obs>_flagged_tiles.txt`` list and the ``<obs>_flags.py`` CASA script."""

from __future__ import annotations

from collections.abc import Iterable


def flagged_tiles_text(antennas: Iterable[int]) -> str:
    """One 0-based metafits Antenna index per line (ascending, no repeats), so user scripts can read the first column.

    Returns the empty string when no tile is flagged; otherwise every line ends with a newline.
    """
    indices = sorted({int(a) for a in antennas})
    if indices and indices[0] < 0:
        raise ValueError(f"antenna indices are 0-based and non-negative, got {indices[0]}")
    return "".join(f"{a}\n" for a in indices)


# The body of every script: plain CASA 6 Python, no f-strings, so it runs in any CASA 6 release.
# In CASA a bare antenna name selects that tile's cross-correlations only; 'A,B&&*' adds the
# autocorrelations, so each named tile is flagged completely (checked in real CASA by
# tests/test_casa_flags.py).
_SCRIPT_BODY = '''


def _is_ms(path):
    """A measurement set: a table directory with an ANTENNA subtable."""
    return os.path.isfile(os.path.join(path, 'table.dat')) and os.path.isdir(os.path.join(path, 'ANTENNA'))


def _find_vis(argv):
    """The last command-line argument that is a measurement set (casa -c leaves its own arguments in argv)."""
    for arg in reversed(argv):
        if _is_ms(arg):
            return os.path.normpath(arg)
    return DEFAULT_VIS if _is_ms(DEFAULT_VIS) else None


def _antenna_names(vis):
    """The NAME column of the measurement set's ANTENNA table, in antenna-index order."""
    from casatools import table
    tb = table()
    tb.open(os.path.join(vis, 'ANTENNA'))
    try:
        return [str(name) for name in tb.getcol('NAME')]
    finally:
        tb.close()


def _token(name, ms_names):
    """How CASA's antenna selection names the tile: its name, else (odd characters) its index, else None."""
    if re.fullmatch(r'[A-Za-z0-9_]+', name):
        return name
    index = str(ms_names.index(name))
    return None if index in ms_names else index  # a name equal to the index would win over it


vis = _find_vis(sys.argv)
if not TILES:
    print('No tiles to flag.')
elif vis is None:
    sys.exit('No measurement set among the command-line arguments %r (nor %s here).\\n'
             'Usage: casa -c <this script> /path/to/measurement_set' % (sys.argv[1:], DEFAULT_VIS))
else:
    try:
        flagdata
    except NameError:  # run by python, not casa: the task comes from casatasks
        from casatasks import flagdata
    ms_names = _antenna_names(vis)
    missing = [name for name in TILES if name not in ms_names]
    tokens = [(name, _token(name, ms_names)) for name in TILES if name in ms_names]
    unselectable = [name for name, token in tokens if token is None]
    flagged = [name for name, token in tokens if token is not None]
    print('Measurement set: %s' % vis)
    if flagged:
        antenna = ','.join(token for name, token in tokens if token is not None) + '&&*'
        flagdata(vis=vis, mode='manual', antenna=antenna, flagbackup=True)
        print('Flagged %d tile(s), every baseline and autocorrelation: %s' % (len(flagged), ', '.join(flagged)))
    else:
        print('Flagged no tile.')
    if missing:
        print('Skipped %d tile(s) the measurement set lacks: %s' % (len(missing), ', '.join(missing)))
    if unselectable:
        print('Skipped %d tile(s) CASA cannot select by name or index: %s'
              % (len(unselectable), ', '.join(unselectable)))
'''


def _comment(text: str) -> str:
    """One comment line's worth of free text: whitespace runs (line breaks too) become one space."""
    return "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))


def casa_flag_script(obs_id: int, tile_names: Iterable[str], *, note: str | None = None) -> str:
    """A CASA script flagging the named tiles completely in one ``flagdata`` call: ``casa -c <script> <ms>``.

    The measurement set is the last command-line argument that is one (any name; ``casa -c`` leaves
    casa's own arguments and the script path in ``sys.argv``), else ``<obs_id>.ms`` in the working
    directory. Tiles the measurement set lacks are skipped and reported. Tile names are embedded as
    Python literals (``repr``), so no name can break out of its string; ``note`` (free text, e.g. the
    correction applied) becomes one header comment line.
    """
    obs = int(obs_id)
    names = list(dict.fromkeys(str(n) for n in tile_names))  # keep order, drop repeats
    lines = [
        f"# CASA flagging script for MWA observation {obs}.",
        f"# Flags the {len(names)} tile(s) flagged in its calibration solution"
        + (":" if names else "."),
        *(f"#   {n!r}" for n in names),
        *([f"# Note: {_comment(note)}"] if note and note.strip() else []),
        "# Each tile is flagged completely (all its baselines, autocorrelations included) in one",
        "# flagdata call, so one flag backup; tiles the measurement set lacks are skipped and reported.",
        f"# Usage: casa -c {obs}_flags.py /path/to/measurement_set",
        f"#    or: python {obs}_flags.py /path/to/measurement_set   (with casatasks installed)",
        f"#        (without a measurement set argument: {obs}.ms in the working directory)",
        "import os",
        "import re",
        "import sys",
        "",
        "TILES = [",
        *(f"    {n!r}," for n in names),
        "]",
        f"DEFAULT_VIS = {f'{obs}.ms'!r}",
    ]
    return "\n".join(lines) + _SCRIPT_BODY
