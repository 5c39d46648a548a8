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


def casa_flag_script(obs_id: int, tile_names: Iterable[str], *, note: str | None = None) -> str:
    """A CASA script flagging each named tile in a measurement set, so users can flag with ``casa -c <script> <ms>``.

    The measurement set is the last command-line argument ending in ``.ms`` (``casa -c`` leaves
    casa's own arguments and the script path in ``sys.argv``), else ``<obs_id>.ms``. Tile names
    are embedded as Python literals (``repr``), so no name can break out of its string. ``note``
    (e.g. the attenuation factor applied to the solution) is added to the header, one comment per line.
    """
    obs = int(obs_id)
    names = list(dict.fromkeys(str(n) for n in tile_names))  # keep order, drop repeats
    lines = [
        f"# CASA flagging script for MWA observation {obs}.",
        f"# Flags the {len(names)} tile(s) flagged in its calibration solution"
        + (":" if names else "."),
        *(f"#   {n!r}" for n in names),
        *(f"# {line}" for line in (note.splitlines() if note else [])),
        f"# Usage: casa -c {obs}_flags.py /path/to/{obs}.ms",
        f"#        (without a .ms argument the measurement set is {obs}.ms in the working directory)",
        "import sys",
        "",
        f"vis = {f'{obs}.ms'!r}",
        "for _arg in reversed(sys.argv):",
        "    if _arg.rstrip('/').endswith('.ms'):",
        "        vis = _arg.rstrip('/')",
        "        break",
        "",
        "print('Flagging %d tile(s) in %s' % (" + str(len(names)) + ", vis))",
    ]
    lines += [f"flagdata(vis=vis, mode='manual', antenna={n!r})" for n in names]
    return "\n".join(lines) + "\n"
