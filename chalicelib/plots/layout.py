"""Where everything goes in a diagnostic plot: tiles laid out by receiver and slot, colours, fading, y range.

Layout: one cell per tile, 8 cells (slots 1..8) per receiver, 4 receivers side by side in each row
of the figure (one matplotlib Axes per row: 4 rows for 128 tiles, 8 for 256, so rendering stays
well under a second). Each cell is labelled below with the tile's name; each receiver with "Rx N"
above. Tiles with no receiver (no observation_tile row) go last, 8 to a group labelled "Rx ?".
Flagged tiles (metafits flag) get a red band, a red name and "flagged" written in their cell; tiles
without any finite value in this fit get a grey band and "no data": neither is silently dropped.
(``figure`` draws all that; this module only decides it.)

All panels share one y range, chosen robustly (outlier tiles would otherwise squash every other
tile into a line); a point beyond it is drawn at the edge as a triangle pointing outwards, and the
plotted fit's own off-scale values are written beside their triangle.

Colours (the spec's): 'mwa' fits X blue, Y green; 'calvin' fits X red, Y orange; any other
creator X purple, Y brown. Older points fade: ``fade_alpha``.

Also the pieces the plots' ``compute`` functions share (tile records, delays, windowed history).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

GROUP_SIZE = 8  # slots per receiver
GROUPS_PER_ROW = 4

CREATOR_COLOURS: dict[str, tuple[str, str]] = {
    "mwa": ("#1f5fbf", "#2ca02c"),  # X blue, Y green
    "calvin": ("#d62728", "#ff8c00"),  # X red, Y orange
}
OTHER_COLOURS = ("#7b3fa0", "#8c564b")  # X purple, Y brown
FLAG_BAND = "#f8d7d4"
FLAG_TEXT = "#b3261e"
NODATA_BAND = "#e4e6ea"
NODATA_TEXT = "#5b6472"

MIN_ALPHA = 0.12
MAX_ALPHA = 0.9


def creator_colour(creator: str | None, pol: str) -> str:
    """The colour of a creator's X or Y points ('mwa' blue/green, 'calvin' red/orange)."""
    pair = CREATOR_COLOURS.get((creator or "").lower(), OTHER_COLOURS)
    return pair[0] if pol.lower() == "x" else pair[1]


def creator_colours(creator: str | None) -> tuple[str, str]:
    """A creator's (X colour, Y colour): the pair a plot of one fit draws its X and Y in."""
    return creator_colour(creator, "x"), creator_colour(creator, "y")


def fade_alpha(age_s: np.ndarray | float, window_s: float) -> np.ndarray:
    """Opacity of a point ``age_s`` seconds older than the plotted fit's observation: 0.9 for the
    same time, falling linearly to 0.12 at the far end of the window."""
    age = np.clip(np.asarray(age_s, dtype=np.float64) / float(window_s), 0.0, 1.0)
    return MAX_ALPHA - (MAX_ALPHA - MIN_ALPHA) * age


def quantize_alpha(alpha: np.ndarray, levels: int = 8) -> np.ndarray:
    """Alphas rounded to a few levels, so points are drawn in a few batches (fast) not one by one."""
    a = np.clip(np.asarray(alpha, dtype=np.float64), MIN_ALPHA, 1.0)
    return np.round(a * levels) / levels


def history_groups(history: Mapping[str, Any]) -> Iterator[tuple[str, float, np.ndarray]]:
    """(creator, alpha, mask) for each batch of a tile's earlier fits: one colour and fading level each.

    Faintest (oldest) batches first, so newer points are drawn on top whatever their creator, and
    creators in name order: the same data always gives the same picture, byte for byte.
    """
    if not len(history["creator"]):
        return
    alpha = quantize_alpha(history["alpha"])
    creators = np.array(history["creator"], dtype=object)
    names = sorted(set(history["creator"]), key=str)
    for a in np.unique(alpha):
        for c in names:
            mask = (creators == c) & (alpha == a)
            if mask.any():
                yield c, a, mask


# --------------------------------------------------------------------------------------------
# Tiles and their places


@dataclass(frozen=True)
class TileRef:
    """A tile of the plotted observation."""

    tileid: int
    name: str
    rx: int | None
    slot: int | None
    flagged: bool


def tile_refs(tile_rows: Iterable[Mapping[str, Any]], solution_tileids: Iterable[int]) -> list[TileRef]:
    """The observation's tiles (observation_tile rows) plus any tile that only has a solution row."""
    refs: dict[int, TileRef] = {}
    for r in tile_rows:
        tid = int(r["tileid"])
        refs[tid] = TileRef(tileid=tid, name=str(r.get("tile_name") or f"Tile{tid:03d}"),
                            rx=None if r.get("rx") is None else int(r["rx"]),
                            slot=None if r.get("slot") is None else int(r["slot"]),
                            flagged=bool(r.get("flagged")))
    for tid in solution_tileids:
        tid = int(tid)
        if tid not in refs:
            refs[tid] = TileRef(tileid=tid, name=f"Tile{tid:03d}", rx=None, slot=None, flagged=False)
    return sorted(refs.values(), key=lambda t: (t.rx is None, t.rx or 0, t.slot or 0, t.tileid))


@dataclass(frozen=True)
class Group:
    """One receiver's cells (or a group of tiles with no receiver)."""

    label: str
    cells: tuple[TileRef | None, ...]  # one per slot position; None = empty slot


def groups(tiles: Sequence[TileRef]) -> list[Group]:
    """Receivers in ascending order, each with its tiles in slot order (8 cells, more if a receiver
    has slots beyond 8), then the tiles without a receiver, 8 to a group."""
    by_rx: dict[int, list[TileRef]] = {}
    loose: list[TileRef] = []
    for t in tiles:
        if t.rx is None:
            loose.append(t)
        else:
            by_rx.setdefault(t.rx, []).append(t)
    out: list[Group] = []
    for rx in sorted(by_rx):
        members = by_rx[rx]
        width = max([GROUP_SIZE] + [t.slot for t in members if t.slot and t.slot > 0])
        cells: list[TileRef | None] = [None] * width
        extra: list[TileRef] = []
        for t in sorted(members, key=lambda t: (t.slot or 0, t.tileid)):
            i = (t.slot or 0) - 1
            if 0 <= i < width and cells[i] is None:
                cells[i] = t
            else:
                extra.append(t)  # a missing or repeated slot: keep the tile, after the others
        cells.extend(extra)
        out.append(Group(label=f"Rx {rx}", cells=tuple(cells)))
    loose.sort(key=lambda t: t.tileid)
    for i in range(0, len(loose), GROUP_SIZE):
        out.append(Group(label="Rx ?", cells=tuple(loose[i:i + GROUP_SIZE])))
    return out


@dataclass(frozen=True)
class Place:
    """Where a tile's cell is: the figure row and the x of the cell centre (cells are 1 wide)."""

    row: int
    x: float


def places(tiles: Sequence[TileRef]) -> tuple[list[list[Group]], dict[int, Place]]:
    """Groups arranged in rows of ``GROUPS_PER_ROW``, and each tile's place."""
    gs = groups(tiles)
    rows = [gs[i:i + GROUPS_PER_ROW] for i in range(0, len(gs), GROUPS_PER_ROW)] or [[]]
    where: dict[int, Place] = {}
    for r, row in enumerate(rows):
        x0 = 0
        for g in row:
            for j, t in enumerate(g.cells):
                if t is not None:
                    where[t.tileid] = Place(row=r, x=float(x0 + j))
            x0 += len(g.cells)
    return rows, where


def cell_spread(n: int, left: float, right: float) -> np.ndarray:
    """``n`` x offsets spread evenly over [left, right] (the middle when n is 1)."""
    if n <= 0:
        return np.zeros(0)
    if n == 1:
        return np.array([(left + right) / 2])
    return np.linspace(left, right, n)


# --------------------------------------------------------------------------------------------
# Value ranges


def robust_limits(values: np.ndarray | Sequence[float], pad: float = 0.06) -> tuple[float, float]:
    """A y range holding all values unless some are far out: then the 2..98 % range widened by
    half its size on each side (a receiver 250 m off would otherwise flatten every other tile into
    a line; such points are drawn at the edge as triangles, with their value). Padded a little;
    (-1, 1) when there is nothing finite."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return -1.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if v.size >= 20:
        p_lo, p_hi = (float(p) for p in np.percentile(v, [2, 98]))
        core = max(p_hi - p_lo, 1e-6)
        lo = max(lo, p_lo - 0.5 * core)
        hi = min(hi, p_hi + 0.5 * core)
    span = hi - lo
    if span <= 1e-9 * max(abs(lo), abs(hi)):  # one value (up to rounding): a range around it
        span = max(abs(hi), 1e-3)
    return lo - pad * span, hi + pad * span


def plotted_values(tiles: Sequence[Mapping[str, Any]], keys: Sequence[str],
                   history_keys: Sequence[str] = ()) -> np.ndarray:
    """Every value a plot draws, for its y range: each tile's ``keys`` then its history's ``history_keys``."""
    if not tiles:
        return np.zeros(0)
    return np.concatenate([np.concatenate([np.ravel(t[k]) for k in keys]
                                          + [np.ravel(t["history"][k]) for k in history_keys]) for t in tiles])


# --------------------------------------------------------------------------------------------
# Shared pieces of the plot data functions


def as_float(v: Any) -> float:
    """A float, NaN for NULL."""
    return math.nan if v is None else float(v)


def tile_entry(t: TileRef, **values: Any) -> dict[str, Any]:
    """The per-tile record every plot's data has: identity, place, flag, and the plot's values."""
    return {"tileid": t.tileid, "name": t.name, "rx": t.rx, "slot": t.slot, "flagged": t.flagged, **values}


def delays_by_tile(solution_rows: Iterable[Mapping[str, Any]]) -> dict[int, tuple[float, float]]:
    """{tileid: (x_delay_m, y_delay_m)} with NaN for NULL."""
    return {int(r["tileid"]): (as_float(r.get("x_delay_m")), as_float(r.get("y_delay_m"))) for r in solution_rows}


def window_history(blocks: Iterable[Mapping[str, Any]], *, fitid: int, obsid: int, window_s: int,
                   values: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """Other fits' values of each tile in a time window, as columns per tile.

    ``blocks``: one per (fitid, obsid) with ``fitid``, ``obsid``, ``creator``, ``tileid`` (one per
    tile) and whatever ``values`` read: {column: block -> array with one row per tile (1-D for a
    scalar per tile, 2-D for an array per tile), NaN = missing}. Kept: blocks of observations
    starting in [obsid - window_s, obsid] except this fit's own (fitid, obsid), and in them the
    tiles with at least one finite value. Per tile the columns are ``fitid``, ``obsid``, ``creator``
    (list), ``age_s`` (obsid - that obsid), ``alpha`` (``fade_alpha``) and one per value, oldest
    first, then by fitid and obsid.
    """
    parts = []
    for blk in blocks:
        f, o = int(blk["fitid"]), int(blk["obsid"])
        if (f == fitid and o == obsid) or not (obsid - window_s <= o <= obsid):
            continue
        tid = np.asarray(blk["tileid"], dtype=np.int64).ravel()
        if tid.size == 0:
            continue
        vals = {n: np.asarray(fn(blk), dtype=np.float64) for n, fn in values.items()}
        keep = np.zeros(tid.size, dtype=bool)
        for v in vals.values():
            fin = np.isfinite(v)
            keep |= fin if fin.ndim == 1 else fin.any(axis=tuple(range(1, fin.ndim)))
        if keep.any():
            parts.append((f, o, blk.get("creator") or "", tid[keep], {n: v[keep] for n, v in vals.items()}))
    if not parts:
        return {}
    tid = np.concatenate([p[3] for p in parts])
    fits = np.concatenate([np.full(p[3].size, p[0], dtype=np.int64) for p in parts])
    obs = np.concatenate([np.full(p[3].size, p[1], dtype=np.int64) for p in parts])
    creators = np.concatenate([np.full(p[3].size, p[2], dtype=object) for p in parts])
    cols = {n: np.concatenate([p[4][n] for p in parts]) for n in values}
    age = (obsid - obs).astype(np.float64)
    order = np.lexsort((obs, fits, -age, tid))  # by tile, then oldest first, then fitid, obsid
    sorted_tid = tid[order]
    cuts = np.flatnonzero(np.diff(sorted_tid)) + 1
    out: dict[int, dict[str, Any]] = {}
    for sel, tids in zip(np.split(order, cuts), np.split(sorted_tid, cuts)):
        h: dict[str, Any] = {"fitid": fits[sel], "obsid": obs[sel], "creator": creators[sel].tolist(),
                             "age_s": age[sel], "alpha": fade_alpha(age[sel], window_s)}
        for n, col in cols.items():
            h[n] = col[sel]
        out[int(tids[0])] = h
    return out


def empty_history(widths: Mapping[str, int]) -> dict[str, Any]:
    """A history with no fits: ``widths`` {column: 0 for scalars, n for arrays of n values}."""
    h: dict[str, Any] = {"fitid": np.zeros(0, np.int64), "obsid": np.zeros(0, np.int64), "creator": [],
                         "age_s": np.zeros(0), "alpha": np.zeros(0)}
    for n, w in widths.items():
        h[n] = np.zeros((0, w)) if w else np.zeros(0)
    return h
