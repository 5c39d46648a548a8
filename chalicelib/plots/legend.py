"""Legend entries the plots share: the flagged-tile key, this fit's marker, X/Y lines and the creators' colours.

An entry is (label, Line2D style): ``figure.Canvas`` turns each into a legend handle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.plots.layout import FLAG_BAND, creator_colour, creator_colours

Entry = tuple[str, dict[str, Any]]
KNOWN_CREATORS = ("mwa", "calvin")


def flagged() -> Entry:
    """The key to the red band of a flagged tile (every plot has them)."""
    return "flagged tile", dict(marker="s", ls="", ms=8, color=FLAG_BAND)


def this_fit() -> Entry:
    """This fit's large black-edged circle, colourless: its colour is the creator's (see ``creators``)."""
    return "this fit", dict(marker="o", ls="", ms=7, color="white", mec="k")


def pol_lines(creator: str | None, labels: tuple[str, str] = ("X", "Y")) -> list[Entry]:
    """This fit's X and Y gains lines (dots on a line) in the creator's colours."""
    return [(label, dict(marker=".", ls="-", ms=4, color=colour))
            for label, colour in zip(labels, creator_colours(creator))]


def creators(data: Mapping[str, Any], pols: tuple[str, ...]) -> list[Entry]:
    """A point per creator present (this fit's and the history's) and pol, in that creator's colour:
    'mwa', 'calvin', then any other creators alphabetically."""
    present = {(data.get("creator") or "")}
    for t in data["tiles"]:
        present.update(t["history"]["creator"])
    names = [c for c in KNOWN_CREATORS if c in present] + sorted(c for c in present if c not in (*KNOWN_CREATORS, ""))
    return [(f"{c} {p.upper()}", dict(marker="o", ls="", ms=5, color=creator_colour(c, p)))
            for c in names for p in pols]
