"""Comparing two calibration solutions: per-tile amplitude ratio and phase difference (``stats``), the route (``api``)."""
