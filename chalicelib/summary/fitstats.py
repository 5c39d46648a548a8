"""The fit page's numbers: median residual delays per receiver and per tile, with counts.

These are the values engineers copy into the configuration database: per receiver (to adjust the
receiver clock fibre lengths) and per tile (to adjust the tile cable lengths).

- Per receiver: the median of the residual delays of every tile on that receiver (its 8 slots) in
  every observation of the fit, pooled; X, Y, and X and Y together ("both"). The count is the
  number of finite values the median was taken over.
- Per tile: the median of the tile's residual delays over all observations of the fit; X, Y and
  both, with counts.
- NaN values (flagged or failed tiles) are left out of medians and counts; a median over nothing is
  None. A tile whose receiver is unknown (no observation_tile row) appears in the tile table
  without receiver and slot, and in no receiver's median.
- Receiver and slot of a tile are taken from the latest observation of the fit that has them.
- Per tile also the line-model error (``calibration_model_error``: rms of the fit file's phase
  minus the row's phase line, rad), X and Y, the largest over the fit's observations (None when
  it was not computed), and ``model_error_over``: True when either is above the threshold
  (``CALIB_MODEL_ERROR_THRESHOLD_RAD``), False when both are at or below it, None when unknown.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

RECEIVER_COLUMNS: tuple[str, ...] = (
    "rx", "tiles", "median_x_m", "n_x", "median_y_m", "n_y", "median_xy_m", "n_xy",
)
TILE_COLUMNS: tuple[str, ...] = (
    "tileid", "tile_name", "rx", "slot", "median_x_m", "n_x", "median_y_m", "n_y", "median_xy_m", "n_xy",
    "observations", "flagged", "model_error_x_rad", "model_error_y_rad", "model_error_over",
)
COLUMN_TITLES: dict[str, str] = {
    "rx": "Rx", "tiles": "Tiles", "tileid": "Tile ID", "tile_name": "Name", "slot": "Slot",
    "median_x_m": "Median X (m)", "n_x": "n X", "median_y_m": "Median Y (m)", "n_y": "n Y",
    "median_xy_m": "Median both (m)", "n_xy": "n both", "observations": "Obs", "flagged": "Flagged in",
    "model_error_x_rad": "Line error X (rad)", "model_error_y_rad": "Line error Y (rad)",
    "model_error_over": "Over limit",
}
DEFAULT_MODEL_ERROR_THRESHOLD_RAD = 0.3
DEFAULT_RECEIVER_SORT = "rx"
DEFAULT_TILE_SORT = "rx"


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if values else None


def _stats(xs: list[float], ys: list[float]) -> dict[str, Any]:
    return {
        "median_x_m": _median(xs), "n_x": len(xs),
        "median_y_m": _median(ys), "n_y": len(ys),
        "median_xy_m": _median(xs + ys), "n_xy": len(xs) + len(ys),
    }


def receiver_medians(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per receiver (ascending): pooled medians of its tiles' delays, with counts."""
    by_rx: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r.get("rx") is None:
            continue
        acc = by_rx.setdefault(int(r["rx"]), {"x": [], "y": [], "tiles": set()})
        acc["x"].extend(_finite([r.get("x_delay_m")]))
        acc["y"].extend(_finite([r.get("y_delay_m")]))
        acc["tiles"].add(int(r["tileid"]))
    return [{"rx": rx, "tiles": len(acc["tiles"]), **_stats(acc["x"], acc["y"])}
            for rx, acc in sorted(by_rx.items())]


def _worst(values: list[float]) -> float | None:
    return max(values) if values else None


def _over(x: float | None, y: float | None, threshold: float) -> bool | None:
    """Either pol's model error above the threshold (None: neither known)."""
    known = [v for v in (x, y) if v is not None]
    return any(v > threshold for v in known) if known else None


def tile_medians(rows: Iterable[Mapping[str, Any]],
                 model_error_threshold_rad: float = DEFAULT_MODEL_ERROR_THRESHOLD_RAD) -> list[dict[str, Any]]:
    """One row per tile (in receiver, slot, tile id order): medians over the fit's observations, worst model error."""
    by_tile: dict[int, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: int(r["obsid"])):
        acc = by_tile.setdefault(int(r["tileid"]), {"x": [], "y": [], "obs": set(), "flagged": 0,
                                                    "rx": None, "slot": None, "name": None, "ex": [], "ey": []})
        acc["x"].extend(_finite([r.get("x_delay_m")]))
        acc["y"].extend(_finite([r.get("y_delay_m")]))
        acc["ex"].extend(_finite([r.get("x_phase_rms")]))
        acc["ey"].extend(_finite([r.get("y_phase_rms")]))
        acc["obs"].add(int(r["obsid"]))
        acc["flagged"] += 1 if r.get("flagged") else 0
        if r.get("rx") is not None:  # later observations win
            acc["rx"], acc["slot"] = int(r["rx"]), (None if r.get("slot") is None else int(r["slot"]))
        if r.get("tile_name"):
            acc["name"] = r["tile_name"]
    out = [{"tileid": tid, "tile_name": acc["name"] or f"Tile{tid:03d}", "rx": acc["rx"], "slot": acc["slot"],
            **_stats(acc["x"], acc["y"]), "observations": len(acc["obs"]), "flagged": acc["flagged"],
            "model_error_x_rad": _worst(acc["ex"]), "model_error_y_rad": _worst(acc["ey"]),
            "model_error_over": _over(_worst(acc["ex"]), _worst(acc["ey"]), model_error_threshold_rad)}
           for tid, acc in by_tile.items()]
    return sort_rows(out, DEFAULT_TILE_SORT, TILE_COLUMNS)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def parse_sort(spec: str | None, columns: Sequence[str], default: str) -> tuple[str, bool]:
    """``'col'`` or ``'-col'`` -> (column, descending); an unknown column gives the default."""
    spec = (spec or "").strip()
    desc = spec.startswith("-")
    col = spec[1:] if desc else spec
    if col not in columns:
        return default, False
    return col, desc


def sort_rows(rows: list[dict[str, Any]], spec: str | None, columns: Sequence[str],
              default: str | None = None) -> list[dict[str, Any]]:
    """Rows sorted by ``spec`` ('col' ascending, '-col' descending); missing values always last.

    Ties keep receiver / slot / tile order, so a sort is stable and repeatable.
    """
    col, desc = parse_sort(spec, columns, default or columns[0])

    def tie(r: dict[str, Any]) -> tuple:
        return tuple((1, 0) if _missing(r.get(k)) else (0, r.get(k)) for k in ("rx", "slot", "tileid") if k in r)

    base = sorted(rows, key=tie)
    present = [r for r in base if not _missing(r.get(col))]
    absent = [r for r in base if _missing(r.get(col))]
    present.sort(key=lambda r: r[col], reverse=desc)
    return present + absent


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV with a header line; missing values empty, floats at full precision."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if _missing(r.get(c)) else (repr(r[c]) if isinstance(r[c], float) else r[c])
                    for c in columns])
    return buf.getvalue()
