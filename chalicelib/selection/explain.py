"""Why this solution: the search, every calibrator and fit looked at, the choice, and the fate of every target tile.

:func:`explain` runs the same rules as the service (``rules.select`` with the gates,
``sides.choose_sides``) on plain records and returns one JSON-able dict::

    {
      "target":   {"obs_id": int, "channels": [int], "gain_control_value": float | null,
                   "tiles": int, "tiles_flagged": int},
      "window":   {"calibrator_starts_from": int, "calibrator_starts_to": int,
                   "max_time_separation": int, "allow_after": bool},
      "criteria": {"any_gain": bool, "correct_attenuation": bool, "prefer_fitid": int | null,
                   "min_tile_fraction": float, "min_phase_quality": float, "interpolate": bool},
      "calibrators": [                         # every calibrator given, nearest first (then earlier)
        {"cal_id": int, "offset": int,         # |cal start - target start|, s
         "side": "before" | "after" | "same",
         "gain_control_value": float | null, "channels": [int],
         "accepted": bool,                     # at least one of its fits is a candidate
         "code": str | null,                   # why not: beyond_window, after_target, attenuation,
                                               #   attenuation_unknown, channels, no_fit,
                                               #   all_fits_failed, retired, epoch (across a whole
                                               #   validity epoch), gates (every usable fit failed one)
         "reason": str | null,
         "fits": [                             # most recent first
           {"fitid": int, "ran_at": float,     # Unix s
            "creator": str | null, "any_good_tile": bool,
            "accepted": bool,                  # a candidate
            "chosen": bool,                    # the fit served (either side when interpolating)
            "code": str | null,                # calibrator (rejected with it), failed (on every
                                               #   tile), gate, not_needed (need_fit=0)
            "reason": str | null,
            "figures": {"tiles_counted": int, "tiles_served": int,   # gates.GateFigures, always
                        "tile_fraction": float | null, "median_phase_quality": float | null}}]}],
      "choice": null | {
         "mode": "nearest" | "interpolated",
         "cal_id": int, "fitid": int, "offset": int,        # the nearest (mode nearest only)
         "before": {"cal_id", "fitid", "offset", "weight"},   # mode interpolated only:
         "after":  {"cal_id", "fitid", "offset", "weight"},   #   w and 1 - w
         "attenuation": null | {"target_db": float, "cal_db": float, "factor": float}
                               # (correct_attenuation; when interpolating one per side:
                               #  {"before": {...}, "after": {...}})
      },
      "epochs": [                              # the validity epochs in force in the search window
        {"epoch_id": int, "boundary_gps": int, "receivers": [int], "tiles": [int], "reason": str,
         "whole": bool,                        # refuses whole solutions (no receivers/tiles named)
         "applied": bool}],                    # it lies between the target and a chosen calibrator
                                               #   (a partial one: the tiles it names are NaN, code epoch)
      "nearest_rejected": null | {...},        # the 404's body (rules.nearest_rejected) when no choice
      "tiles": [                               # the target's tiles in Antenna order
        {"antenna": int, "tile_id": int, "name": str,
         "served": bool,
         "code": null | "flagged_in_target" | "epoch" | "nan_in_fit" | "not_in_fit" | "model_error",
         "reason": str | null}]
    }

A tile is served when it is not flagged in the target's metafits, the chosen fit (either
side when interpolating) solves it (a row with X and Y delay and intercept not NaN), no partial
validity epoch between the target and the chosen calibrator names it or its receiver (code
``epoch``: served as NaN), and its model error, when given, is not over ``model_error_max``.
With no choice every tile is unserved (code ``not_in_fit`` unless flagged in the target).
``epochs`` are the validity epochs in force in the window (``steering``), applied as the service
applies them (``rules.select``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chalicelib.selection.gates import FitQuality, GateInput
from chalicelib.selection.rules import (Calibrator, Candidate, Criteria, Selection, Target, nearest_rejected,
                                        select, window)
from chalicelib.solutions import TileInfo
from chalicelib.solutions.attenuation import attenuation_factor
from chalicelib.selection.sides import Sides, choose_sides
from chalicelib.selection.steering import Epoch, between


def explain(target: Target, tiles: Sequence[TileInfo], calibrators: Sequence[Calibrator], criteria: Criteria,
            qualities: Mapping[tuple[int, int], FitQuality], *, interpolate: bool = False,
            model_error: Mapping[int, float] | None = None, model_error_max: float | None = None,
            epochs: Sequence[Epoch] = ()) -> dict:
    """The explanation of the solution the service serves for ``target`` (shape in the module docstring)."""
    gates = GateInput.for_target(tiles, qualities)
    sel = select(target, list(calibrators), criteria, gates, epochs=tuple(epochs))
    best = sel.best if sel.best and sel.best.fit else None
    sides = choose_sides(target, sel.candidates) if interpolate and best else None
    chosen = [sides.before, sides.after] if sides else ([best] if best else [])
    low, high = window(target, criteria)
    return {
        "target": {"obs_id": target.obsid, "channels": list(target.channels),
                   "gain_control_value": target.gain_control_value, "tiles": len(tiles),
                   "tiles_flagged": sum(t.flagged for t in tiles)},
        "window": {"calibrator_starts_from": low, "calibrator_starts_to": high,
                   "max_time_separation": criteria.max_time_separation, "allow_after": criteria.allow_after},
        "criteria": {"any_gain": criteria.any_gain, "correct_attenuation": criteria.correct_attenuation,
                     "prefer_fitid": criteria.prefer_fitid, "min_tile_fraction": criteria.min_tile_fraction,
                     "min_phase_quality": criteria.min_phase_quality, "interpolate": interpolate},
        "calibrators": [_calibrator(target, c, criteria, sel, gates, chosen)
                        for c in sorted(calibrators, key=lambda c: (abs(c.obsid - target.obsid), c.obsid))],
        "choice": _choice(target, criteria, best, sides),
        "nearest_rejected": None if best else nearest_rejected(sel),
        "epochs": _epochs(epochs, target, chosen),
        "tiles": _tiles(tiles, [qualities.get((c.fit.fitid, c.calibrator.obsid)) for c in chosen],
                        [c.fit.fitid for c in chosen], model_error, model_error_max,
                        _partial(epochs, target, chosen)),
    }


def _partial(epochs: Sequence[Epoch], target: Target, chosen: list[Candidate]) -> list[Epoch]:
    """The partial epochs between the target and a chosen calibrator: the tiles they name are served as NaN."""
    found = {e.epoch_id: e for c in chosen for e in between(epochs, c.calibrator.obsid, target.obsid) if not e.whole}
    return [found[i] for i in sorted(found)]


def _epochs(epochs: Sequence[Epoch], target: Target, chosen: list[Candidate]) -> list[dict]:
    applied = {e.epoch_id for c in chosen for e in between(epochs, c.calibrator.obsid, target.obsid)}
    return [{"epoch_id": e.epoch_id, "boundary_gps": e.boundary_gps, "receivers": list(e.receivers),
             "tiles": list(e.tiles), "reason": e.reason, "whole": e.whole, "applied": e.epoch_id in applied}
            for e in sorted(epochs, key=lambda e: (e.boundary_gps, e.epoch_id))]


def _calibrator(target: Target, cal: Calibrator, criteria: Criteria, sel: Selection, gates: GateInput,
                chosen: list[Candidate]) -> dict:
    offset = cal.obsid - target.obsid
    cal_rejection = next((r for r in sel.rejected if r.obsid == cal.obsid and r.fitid is None), None)
    accepted_fits = {c.fit.fitid for c in sel.candidates if c.calibrator.obsid == cal.obsid and c.fit}
    served = {(c.fit.fitid, c.calibrator.obsid) for c in chosen}
    fits = []
    for f in sorted(cal.fits, key=lambda f: (-f.ran_at, -f.fitid)):
        gated = next((r for r in sel.rejected if r.obsid == cal.obsid and r.fitid == f.fitid), None)
        if f.fitid in accepted_fits:
            code, reason = None, None
        elif cal_rejection:
            code, reason = "calibrator", cal_rejection.reason
        elif not f.any_good_tile:
            code, reason = "failed", "failed on every tile"
        elif gated:
            code, reason = "gate", gated.reason
        else:
            code, reason = "not_needed", "fits are not needed (need_fit=0)"
        fits.append({"fitid": f.fitid, "ran_at": f.ran_at, "creator": f.creator, "any_good_tile": f.any_good_tile,
                     "accepted": f.fitid in accepted_fits, "chosen": (f.fitid, cal.obsid) in served,
                     "code": code, "reason": reason, "figures": gates.figures(f.fitid, cal.obsid).as_dict()})
    accepted = cal_rejection is None and (bool(accepted_fits) or not criteria.need_fit)
    code = cal_rejection.code if cal_rejection else (None if accepted else "gates")
    reason = cal_rejection.reason if cal_rejection else (None if accepted else "every usable fit failed a gate")
    return {"cal_id": cal.obsid, "offset": abs(offset),
            "side": "before" if offset < 0 else ("after" if offset > 0 else "same"),
            "gain_control_value": cal.gain_control_value, "channels": list(cal.channels),
            "accepted": accepted, "code": code, "reason": reason, "fits": fits}


def _attenuation(target: Target, cal: Calibrator) -> dict:
    equal = target.gain_control_value == cal.gain_control_value
    return {"target_db": target.gain_control_value, "cal_db": cal.gain_control_value,
            "factor": 1.0 if equal else attenuation_factor(target.gain_control_value, cal.gain_control_value)}


def _choice(target: Target, criteria: Criteria, best: Candidate | None, sides: Sides | None) -> dict | None:
    if best is None:
        return None
    correct = criteria.correct_attenuation
    if sides is None:
        return {"mode": "nearest", "cal_id": best.calibrator.obsid, "fitid": best.fit.fitid, "offset": best.offset,
                "attenuation": _attenuation(target, best.calibrator) if correct else None}
    out: dict = {"mode": "interpolated"}
    for name, c, w in (("before", sides.before, sides.weight), ("after", sides.after, 1.0 - sides.weight)):
        out[name] = {"cal_id": c.calibrator.obsid, "fitid": c.fit.fitid, "offset": c.offset, "weight": w}
    out["attenuation"] = ({"before": _attenuation(target, sides.before.calibrator),
                           "after": _attenuation(target, sides.after.calibrator)} if correct else None)
    return out


def _tiles(tiles: Sequence[TileInfo], facts: list[FitQuality | None], fitids: list[int],
           model_error: Mapping[int, float] | None, model_error_max: float | None,
           masking_epochs: Sequence[Epoch] = ()) -> list[dict]:
    solved = [f.solved_tiles if f else frozenset() for f in facts]
    present = [frozenset(f.tiles) if f else frozenset() for f in facts]
    out = []
    for t in sorted(tiles, key=lambda t: t.antenna):
        err = None if model_error is None else model_error.get(t.tile_id)
        nan_in = [f"fit {i}" for i, p in zip(fitids, present) if t.tile_id in p]
        missing_from = [f"fit {i}" for i, p in zip(fitids, present) if t.tile_id not in p]
        masked_by = [e.epoch_id for e in masking_epochs if t.tile_id in e.tiles or t.rx in e.receivers]
        if t.flagged:
            code, reason = "flagged_in_target", "flagged in the target's metafits"
        elif masked_by:
            code, reason = "epoch", f"served as NaN: validity epoch {' and '.join(map(str, masked_by))}"
        elif any(t.tile_id in s for s in solved):
            if err is not None and model_error_max is not None and err > model_error_max:
                code, reason = "model_error", f"model error {err:.6g} over {model_error_max:g}"
            else:
                code, reason = None, None
        elif nan_in:
            code = "nan_in_fit"
            reason = "; ".join([f"NaN in {' and '.join(nan_in)}"] + ([f"not in {' and '.join(missing_from)}"]
                                                                      if missing_from else []))
        else:
            code, reason = "not_in_fit", f"not in {' and '.join(missing_from)}" if fitids else "no fit was chosen"
        out.append({"antenna": t.antenna, "tile_id": t.tile_id, "name": t.name, "served": code is None,
                    "code": code, "reason": reason})
    return out
