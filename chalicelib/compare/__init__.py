"""Comparing two calibration solutions: per-tile ratio and phase difference (``stats``), its plot (``plot``),
the route (``api``)."""
