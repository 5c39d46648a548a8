"""Transfer a calibrator's solution to a target observed at another analogue attenuation.

ATTEN_DB (schedule ``gain_control_value``) is one attenuation in dB for the whole observation,
applied in every receiver before digitising. In the data-to-model convention of our Jones the
correction is one real factor on every Jones (all tiles, both pols, every channel; phases
unchanged)::

    J_target = J_cal * 10 ** ((A_target - A_cal) / 20)

e.g. a 1 dB calibrator serving a 9 dB target: |J| x 10^(8/20) = 2.512. Stored gains are 1/|J|,
so on ``calibration_solutions`` rows the same correction divides every gain term by the factor.
It holds only when both observations use the same digital gains and PFB flavour (domain.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

GAIN_COLUMNS = ("x_gains", "x_gains_pol0", "x_gains_pol1", "y_gains", "y_gains_pol0", "y_gains_pol1")


def attenuation_factor(target_db: float, cal_db: float) -> float:
    """The real factor on the calibrator's Jones for the target: 10^((A_target - A_cal) / 20)."""
    return 10.0 ** ((float(target_db) - float(cal_db)) / 20.0)


def correct_jones(jones: np.ndarray, target_db: float, cal_db: float) -> np.ndarray:
    """Jones scaled to the target's attenuation; the very same array (not a copy) when the attenuations are equal."""
    if target_db == cal_db:
        return jones
    return jones * attenuation_factor(target_db, cal_db)


def correct_rows(rows: Sequence[Mapping[str, Any]], target_db: float, cal_db: float) -> list[Mapping[str, Any]]:
    """calibration_solutions rows scaled to the target's attenuation: every gain term / factor (rows unchanged when equal).

    Use it before combining two calibrators of different attenuation (interpolation); for one
    calibrator ``correct_jones`` on the rebuilt Jones is the same correction.
    """
    if target_db == cal_db:
        return list(rows)
    f = attenuation_factor(target_db, cal_db)
    out: list[Mapping[str, Any]] = []
    for r in rows:
        new = dict(r)
        for c in GAIN_COLUMNS:
            v = r.get(c)
            if v is not None:
                new[c] = np.asarray(v, dtype=np.float64) / f
        out.append(new)
    return out
