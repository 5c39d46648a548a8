"""A small hand-built data set for the summary page, fit page and plot tests (checked in test_summary_page).

Observations (GPS seconds) around the real calibrator 1457865688 (2026-03-18 10:41:10 UTC):

- A = 1457865688 "Cal_PicA_Ch121": 18 tiles. Rx 1 slots 1-8 (tiles 11..18), Rx 3 slots 1-8
  (tiles 31..38), tile 15 flagged (NaN rows); tile 99 has solution rows but no observation_tile
  row (receiver unknown); tile 38 is in observation_tile but has no solution row in fit F_CALVIN.
- B = A + 600 "Cal_PicA_Ch145" (same tiles), fitted together with A by the 'mwa' fit F_MWA.
- C = A - 3 days, D = A - 10 days, E = A - 40 days (outside both windows), G = A + 1 day (after A).

Fits (fitid: creator, observations):
- F_CALVIN = 1773831785589944 (µs, fit_time NULL -> 2026-03-18 19:03:05 AWST): calvin, A.
- F_MWA = 1773830000 (s, fit_time NULL -> 2026-03-18 18:33:20 AWST): mwa, A and B.
- F_C_MWA (mwa, C), F_C_CALVIN (calvin, C), F_D (calvin, D), F_E (calvin, E), F_G (calvin, G).

Delays: x = tile/100 + XOFF[fit], y = -tile/200 + YOFF[fit] (metres); gains: x_gains[k] =
1 + tile/1000 + k/100 + GOFF[fit], y_gains = x_gains + 0.5. Channels: A, C, E, G 109..132;
B and D the picket fence 55, 60, .., 170 (so D shares no channel with A: 'gaintimes' of A never
shows D; with timediff windows D is out anyway).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from chalicelib.records import Fit, Observation, SolutionRow
from chalicelib.solutions import TileInfo

DAY = 86400
A = 1457865688
B = A + 600
C = A - 3 * DAY
D = A - 10 * DAY
E = A - 40 * DAY
G = A + DAY

F_CALVIN = 1773831785589944
F_MWA = 1773830000
F_C_MWA = 1773570000
F_C_CALVIN = 1773571234567890
F_D = 1772967000000000
F_E = 1770375000000000
F_G = 1773918000000000

CONTIGUOUS = list(range(109, 133))
PICKET = list(range(55, 171, 5))

RX1 = list(range(11, 19))
RX3 = list(range(31, 39))
LOOSE = 99  # solution rows only
FLAGGED = 15
MISSING_IN_CALVIN = 38

# (fitid, obsid): (creator, x offset, y offset, gain offset, fit_time)
FITS: dict[tuple[int, int], tuple[str, float, float, float, datetime | None]] = {
    (F_CALVIN, A): ("calvin", 0.0, 0.0, 0.0, None),
    (F_MWA, A): ("mwa", 0.05, 0.02, 0.01, None),
    (F_MWA, B): ("mwa", 0.06, 0.03, 0.02, None),
    (F_C_MWA, C): ("mwa", 0.3, -0.1, 0.03, datetime(2026, 3, 15, 10, 0, tzinfo=timezone.utc)),
    (F_C_CALVIN, C): ("calvin", 0.2, -0.2, 0.04, None),
    (F_D, D): ("calvin", 0.7, 0.4, 0.05, None),
    (F_E, E): ("calvin", 0.9, 0.9, 0.06, None),
    (F_G, G): ("calvin", -0.5, -0.5, 0.07, None),
}
NAMES = {A: "Cal_PicA_Ch121", B: "Cal_PicA_Ch145", C: "Cal_HydA_Ch121", D: "Cal_3C444_pf",
         E: "Cal_CenA_Ch121", G: "Cal_ForA_Ch121"}
CHANNELS = {A: CONTIGUOUS, B: PICKET, C: CONTIGUOUS, D: PICKET, E: CONTIGUOUS, G: CONTIGUOUS}


def tiles() -> list[TileInfo]:
    out = []
    for rx, ids in ((1, RX1), (3, RX3)):
        for slot, tid in enumerate(ids, 1):
            out.append(TileInfo(antenna=len(out), tile_id=tid, name=f"Tile{tid:03d}", rx=rx, slot=slot,
                                flagged=tid == FLAGGED))
    return out


def delay(tile: int, fitid: int, obsid: int) -> tuple[float, float]:
    """The (x, y) delay the data set stores (NaN for the flagged tile)."""
    if tile == FLAGGED:
        return math.nan, math.nan
    _, xo, yo, _, _ = FITS[(fitid, obsid)]
    return tile / 100 + xo, -tile / 200 + yo


def gains(tile: int, fitid: int, obsid: int) -> tuple[list[float], list[float]]:
    if tile == FLAGGED:
        return [math.nan] * 24, [math.nan] * 24
    go = FITS[(fitid, obsid)][3]
    gx = [1 + tile / 1000 + k / 100 + go for k in range(24)]
    return gx, [g + 0.5 for g in gx]


def solution_tiles(fitid: int, obsid: int) -> list[int]:
    ids = RX1 + RX3 + [LOOSE]
    if (fitid, obsid) == (F_CALVIN, A):
        ids = [t for t in ids if t != MISSING_IN_CALVIN]
    return ids


def rows(fitid: int, obsid: int) -> list[SolutionRow]:
    out = []
    for tid in solution_tiles(fitid, obsid):
        x, y = delay(tid, fitid, obsid)
        gx, gy = gains(tid, fitid, obsid)
        out.append(SolutionRow(tileid=tid, x_delay_m=x, x_intercept=0.0, x_gains=gx, y_delay_m=y,
                               y_intercept=0.0, y_gains=gy))
    return out


def observation(obsid: int) -> Observation:
    return Observation(obsid=obsid, stoptime=obsid + 120, obsname=NAMES[obsid], channels=CHANNELS[obsid],
                       gain_control_value=1.0, calibration=True, calibrators="PicA", creator="test",
                       projectid="D0006", mode="MWAX_CORRELATOR", tiles=tiles())


def fit_record(fitid: int, obsid: int) -> Fit:
    creator, _, _, _, fit_time = FITS[(fitid, obsid)]
    return Fit(fitid=fitid, obsid=obsid, fit_time=fit_time, creator=creator,
               code_version="1.1.3" if creator == "calvin" else "0.17.69",
               fit_niter=3 if creator == "calvin" else 45, fit_limit=0.0 if creator == "calvin" else 50.0,
               source_list="GGSM_updated.fits")


def seed(extra_names: dict[int, str] | None = None) -> None:
    """Write the data set (the database must be empty: use the clean_db fixture)."""
    from chalicelib import db
    from chalicelib.db import writes

    with db.transaction() as tx:
        for obsid in NAMES:
            obs = observation(obsid)
            if extra_names and obsid in extra_names:
                obs.obsname = extra_names[obsid]
            writes.insert_observation(tx, obs)
        # tile 99 has no observation_tile row: remove nothing, it was never added
        for fitid, obsid in FITS:
            writes.insert_fit(tx, fit_record(fitid, obsid), rows(fitid, obsid))


# --------------------------------------------------------------------------------------------
# Reading the pages back: a minimal DOM (stdlib html.parser), enough to find links and cells.

from html.parser import HTMLParser  # noqa: E402

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None = None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def find_all(self, tag: str, cls: str | None = None, **attrs: str) -> list[Node]:
        out = []
        for c in self.children:
            if isinstance(c, Node):
                if c.tag == tag and (cls is None or cls in c.classes()) and all(
                        c.attrs.get(k) == v for k, v in attrs.items()):
                    out.append(c)
                out.extend(c.find_all(tag, cls, **attrs))
        return out

    def find(self, tag: str, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag} class={cls} {attrs}>"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in _VOID:
            self.cur = node

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_html(text: str) -> Node:
    b = _Builder()
    b.feed(text)
    b.close()
    return b.root
