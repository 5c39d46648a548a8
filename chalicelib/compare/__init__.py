"""Comparing two calibration solutions: per-tile amplitude ratio and phase difference (``stats``), their plot (``plot``), the route (``api``)."""
