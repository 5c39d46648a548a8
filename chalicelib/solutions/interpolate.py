"""A solution interpolated in time between the calibrators just before and just after the target.

Weights: t the target's start, t_b < t < t_a the two calibrators' starts (GPS s)::

    w = (t_a - t) / (t_a - t_b)        (w on the calibrator before, 1 - w on the one after)

On ``calibration_solutions`` rows (:func:`interpolate_rows`), per tile and pol (X, Y):

    delay     = w d_b + (1 - w) d_a
    intercept = arg(w e^{i i_b} + (1 - w) e^{i i_a})            wrapped to [-pi, pi)
    gains[k], gains_pol0[k], gains_pol1[k] = w g_b + (1 - w) g_a

- A side "has a solution" for (tile, pol) when the tile has a row there with a non-NaN delay
  and intercept. With one side only, that side's values are taken as they are; with neither,
  everything is NaN (a flagged tile).
- Gains per coarse channel k, when both sides have the tile: a side whose gains[k], pol0[k]
  or pol1[k] is NaN has no amplitude for k, and the other side's three values are taken. When
  exactly one side has a straight-line amplitude (pol0/pol1 not both 0) and the other only
  gains[k] (zeros: "no fit"), the latter counts as the flat line (gains[k], 0), so the result is
  the line w G_b(nu) + (1 - w) G_a(nu) the formula means.
- Phases are relative to each fit's reference tile. Both sides are first re-referenced, per
  pol, to the lowest tile id that both solve (phase = intercept - 2 pi nu delay / c is linear,
  so subtracting that tile's delay and intercept is exact); when it is already the reference of
  both fits (its delay and intercept are 0) nothing changes.

Gains travel in the channel order of the target (:func:`cut_channels` first), so the rows feed
``solutions.rebuild.assemble`` / ``rebuild_jones`` unchanged.

For Jones read from solution files (:func:`combine_jones`), each side is first divided by its
own reference tile's phase, per channel and pol, ``J' = J . diag(u_x, u_y)^H`` with
``u_x = J_ref,XX / |J_ref,XX|`` and ``u_y = J_ref,YY / |J_ref,YY|``, i.e. XX and YX times
conj(u_x), XY and YY times conj(u_y) (the phase part of hyperdrive's ``J . J_ref^-1``); then
``w J_b' + (1 - w) J_a'``. A side whose Jones (any of the four terms) is NaN for a (tile,
channel) -- including every tile of a channel where its reference is NaN or 0 -- leaves the
other side's; both NaN gives NaN.

The reference tile (:func:`shared_reference`) is ONE tile for both sides, so the two are on one
phase reference (two different tiles would mix two gauges whose difference runs with frequency).
A hyperdrive file names no reference; a fit's own is the tile its rows hold at delay and intercept
exactly 0 in both pols (the ingest's choice, which the table's phases are relative to). The first
of the fits' own references (before's, then after's) that is one of the target's tiles and has
usable XX and YY (finite, non-zero) on both sides in every channel where any tile has them on
both, is taken; else the target tile usable on both sides in the most channels (lowest tile id
first); when no tile is usable on both sides anywhere (no tile is combined then), each side's
own most usable tile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

POLS = ("x", "y")
GAIN_TERMS = ("gains", "gains_pol0", "gains_pol1")
ARRAY_COLUMNS = tuple(f"{p}_{g}" for p in POLS for g in GAIN_TERMS)


def weight(t: float, t_before: float, t_after: float) -> float:
    """w = (t_a - t) / (t_a - t_b): 1 at the calibrator before, 0 at the one after; needs t_b < t < t_a."""
    if not t_before < t < t_after:
        raise ValueError(f"the target start {t} must lie strictly between {t_before} and {t_after}")
    return (t_after - t) / (t_after - t_before)


def cut_channels(rows: Sequence[Mapping[str, Any]], cal_channels: Sequence[int],
                 channels: Sequence[int]) -> list[dict]:
    """Rows with every gain array cut from ``sorted(cal_channels)`` to ``sorted(channels)`` (None/empty kept)."""
    col = {ch: k for k, ch in enumerate(sorted(cal_channels))}
    missing = sorted(set(channels) - set(col))
    if missing:
        raise ValueError(f"the calibrator does not cover channels {missing}")
    idx = np.array([col[ch] for ch in sorted(channels)], dtype=int)
    out = []
    for r in rows:
        new = dict(r)
        for c in ARRAY_COLUMNS:
            v = r.get(c)
            if v is not None and len(v):
                if len(v) != len(col):
                    raise ValueError(f"{c} of tile {r['tileid']} has {len(v)} values, expected {len(col)}")
                new[c] = np.asarray(v, dtype=np.float64)[idx]
        out.append(new)
    return out


def _n_coarse(rows: Sequence[Mapping[str, Any]]) -> int:
    for r in rows:
        for c in ARRAY_COLUMNS:
            v = r.get(c)
            if v is not None and len(v):
                return len(v)
    return 0


def _side(rows: Sequence[Mapping[str, Any]], tiles: np.ndarray, n_coarse: int, pol: str) -> dict[str, np.ndarray]:
    """One side's values for one pol over ``tiles`` (missing tile: NaN; None/empty pol0/pol1: zeros)."""
    n = tiles.size
    at = {int(r["tileid"]): r for r in rows}
    out = {"delay": np.full(n, np.nan), "intercept": np.full(n, np.nan), "gains": np.full((n, n_coarse), np.nan),
           "gains_pol0": np.zeros((n, n_coarse)), "gains_pol1": np.zeros((n, n_coarse))}
    for i, t in enumerate(tiles):
        r = at.get(int(t))
        if r is None:
            continue
        for key, col in (("delay", f"{pol}_delay_m"), ("intercept", f"{pol}_intercept")):
            out[key][i] = np.nan if r.get(col) is None else r[col]
        for g in GAIN_TERMS:
            v = r.get(f"{pol}_{g}")
            if v is None or len(v) == 0:
                continue
            if len(v) != n_coarse:
                raise ValueError(f"{pol}_{g} of tile {t} has {len(v)} values, expected {n_coarse}")
            out[g][i] = np.asarray(v, dtype=np.float64)
    return out


def _wrap(phase: np.ndarray) -> np.ndarray:
    """Phases in [-3 pi, 3 pi) wrapped to [-pi, pi); those already inside are kept bit for bit."""
    return np.where(phase >= np.pi, phase - 2 * np.pi, np.where(phase < -np.pi, phase + 2 * np.pi, phase))


def _rereference(b: dict[str, np.ndarray], a: dict[str, np.ndarray], ok_b: np.ndarray, ok_a: np.ndarray) -> None:
    """Refer both sides' phases to the lowest tile both solve (tiles ascending), in place; no-op when it is 0 on both."""
    both = np.flatnonzero(ok_b & ok_a)
    if both.size == 0:
        return
    r = both[0]
    for side in (b, a):
        d0, i0 = side["delay"][r], side["intercept"][r]
        if d0 != 0 or i0 != 0:
            side["delay"] = side["delay"] - d0
            side["intercept"] = _wrap(side["intercept"] - i0)


def _combine_gains(b: dict[str, np.ndarray], a: dict[str, np.ndarray], w: float) -> dict[str, np.ndarray]:
    """Per channel: w b + (1 - w) a where both sides have an amplitude, else the side that has one, else NaN."""
    def usable(s: dict[str, np.ndarray]) -> np.ndarray:
        return np.isfinite(s["gains"]) & np.isfinite(s["gains_pol0"]) & np.isfinite(s["gains_pol1"])

    def has_line(s: dict[str, np.ndarray]) -> np.ndarray:
        return (s["gains_pol0"] != 0) | (s["gains_pol1"] != 0)

    ub, ua = usable(b), usable(a)
    lb, la = has_line(b), has_line(a)
    out = {}
    for g in GAIN_TERMS:
        vb, va = b[g], a[g]
        if g != "gains":
            # one side a line, the other a flat amplitude: that amplitude is the line (gains, 0)
            flat = b["gains"] if g == "gains_pol0" else np.zeros_like(vb)
            vb = np.where(la & ~lb, flat, vb)
            flat = a["gains"] if g == "gains_pol0" else np.zeros_like(va)
            va = np.where(lb & ~la, flat, va)
        with np.errstate(invalid="ignore"):
            mixed = w * vb + (1.0 - w) * va
        out[g] = np.where(ub & ua, mixed, np.where(ub, b[g], np.where(ua, a[g], np.nan)))
    return out


def _combine_pol(b: dict[str, np.ndarray], a: dict[str, np.ndarray], w: float) -> dict[str, np.ndarray]:
    """One pol of every tile: interpolated where both sides solve it, one side's where only it does, else NaN."""
    ok_b = np.isfinite(b["delay"]) & np.isfinite(b["intercept"])
    ok_a = np.isfinite(a["delay"]) & np.isfinite(a["intercept"])
    _rereference(b, a, ok_b, ok_a)
    both, only_b, only_a = ok_b & ok_a, ok_b & ~ok_a, ok_a & ~ok_b
    with np.errstate(invalid="ignore"):
        delay = w * b["delay"] + (1.0 - w) * a["delay"]
        intercept = _wrap(np.angle(w * np.exp(1j * b["intercept"]) + (1.0 - w) * np.exp(1j * a["intercept"])))
    gains = _combine_gains(b, a, w)
    out = {"delay": np.where(both, delay, np.nan), "intercept": np.where(both, intercept, np.nan)}
    for g in GAIN_TERMS:
        out[g] = np.where(both[:, None], gains[g], np.nan)
    for keep, side in ((only_b, b), (only_a, a)):
        for key in out:
            out[key][keep] = side[key][keep]
    return out


def interpolate_rows(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]],
                     w: float) -> list[dict]:
    """Rows (tile ids ascending, every tile of either side) interpolated with weight w on ``before``.

    Both row sets must have their gains in the same channel order (``cut_channels``). Each row
    holds ``tileid`` and the delay, intercept and gain columns of X and Y (arrays as numpy).
    """
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {w}")
    n_b, n_a = _n_coarse(before), _n_coarse(after)
    if n_b and n_a and n_b != n_a:
        raise ValueError(f"the two sides have {n_b} and {n_a} coarse channels; cut both to the target's")
    n_coarse = n_b or n_a
    tiles = np.array(sorted({int(r["tileid"]) for r in (*before, *after)}), dtype=np.int64)
    pols = {p: _combine_pol(_side(before, tiles, n_coarse, p), _side(after, tiles, n_coarse, p), w) for p in POLS}
    rows = []
    for i, t in enumerate(tiles):
        row: dict[str, Any] = {"tileid": int(t)}
        for p in POLS:
            v = pols[p]
            row[f"{p}_delay_m"] = float(v["delay"][i])
            row[f"{p}_intercept"] = float(v["intercept"][i])
            for g in GAIN_TERMS:
                row[f"{p}_{g}"] = v[g][i].copy()
        rows.append(row)
    return rows


def reference_phase(jones: np.ndarray, ref: int) -> np.ndarray:
    """Jones (..., tile, channel, 4) divided by tile ``ref``'s phase per channel: XX, YX x conj(u_x); XY, YY x conj(u_y)."""
    j = np.asarray(jones, dtype=np.complex128)
    with np.errstate(invalid="ignore", divide="ignore"):
        u_x = j[..., ref, :, 0] / np.abs(j[..., ref, :, 0])
        u_y = j[..., ref, :, 3] / np.abs(j[..., ref, :, 3])
    out = np.empty_like(j)
    cx, cy = np.conj(u_x)[..., None, :], np.conj(u_y)[..., None, :]
    out[..., 0] = j[..., 0] * cx
    out[..., 2] = j[..., 2] * cx
    out[..., 1] = j[..., 1] * cy
    out[..., 3] = j[..., 3] * cy
    return out


def combine_jones(before: np.ndarray, after: np.ndarray, w: float, ref_before: int, ref_after: int) -> np.ndarray:
    """w J_b' + (1 - w) J_a' of two Jones arrays (..., tile, channel, 4) on the same tiles and channels.

    J' is each side divided by its own reference tile's phase (``reference_phase``); a (tile,
    channel) NaN on one side takes the other's, NaN on both stays NaN.
    """
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {w}")
    jb, ja = reference_phase(before, ref_before), reference_phase(after, ref_after)
    if jb.shape != ja.shape:
        raise ValueError(f"the two sides differ in shape: {jb.shape} and {ja.shape}")
    ok_b = np.isfinite(jb).all(axis=-1)[..., None]
    ok_a = np.isfinite(ja).all(axis=-1)[..., None]
    with np.errstate(invalid="ignore"):
        mixed = w * jb + (1.0 - w) * ja
    nan = complex(np.nan, np.nan)
    return np.where(ok_b & ok_a, mixed, np.where(ok_b, jb, np.where(ok_a, ja, nan)))


def _usable(jones: np.ndarray) -> np.ndarray:
    """(tile, channel): XX and YY finite and non-zero, so the tile's phase can refer the others."""
    xx, yy = jones[..., 0], jones[..., 3]
    with np.errstate(invalid="ignore"):
        return np.isfinite(xx) & np.isfinite(yy) & (xx != 0) & (yy != 0)


def shared_reference(before: np.ndarray, after: np.ndarray, tile_ids: Sequence[int | None],
                     preferred: Sequence[int | None]) -> tuple[int, int]:
    """The tile index each side (tile, channel, 4) is divided by: one tile for both (module doc, the rule)."""
    ok_b, ok_a = _usable(np.asarray(before)), _usable(np.asarray(after))
    ids = np.array([np.iinfo(np.int64).max if t is None else int(t) for t in tile_ids], dtype=np.int64)
    order = np.argsort(ids, kind="stable")

    def most(mask: np.ndarray) -> int:
        counts = mask.sum(axis=1)
        return int(order[np.argmax(counts[order])]) if ids.size else 0

    both = ok_b & ok_a
    if not both.any():
        return most(ok_b), most(ok_a)
    used = both.any(axis=0)
    for t in preferred:
        hits = np.flatnonzero(ids == t) if t is not None else []
        if len(hits) and both[hits[0], used].all():
            return int(hits[0]), int(hits[0])
    i = most(both)
    return i, i
