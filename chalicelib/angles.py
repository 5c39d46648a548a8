"""Phase angles: the one wrap to [-pi, pi) the fits, the demo data and any plot use."""

from __future__ import annotations

import numpy as np


def wrap_phase(phase: np.ndarray | float) -> np.ndarray:
    """Radians wrapped to [-pi, pi), so phases that differ by whole turns compare equal."""
    return np.mod(np.asarray(phase) + np.pi, 2 * np.pi) - np.pi
