"""Calibration solutions: the one type (``solution``), its rebuild from rows (``rebuild``), the zip (``bundle``).

Only the type is imported here: ``formats`` and ``records`` import it, and ``bundle`` imports
``formats``, so this package's ``__init__`` must not pull ``rebuild`` or ``bundle`` in.
"""

from chalicelib.solutions.solution import CalibrationSolution, TileInfo, canonical_nan, unnamed_tiles

__all__ = ["CalibrationSolution", "TileInfo", "canonical_nan", "unnamed_tiles"]
