"""Plain records of the database rows the science works on (observations, fits, solution rows)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from chalicelib.solutions import TileInfo


@dataclass
class Observation:
    """One observation: its mwa_setting, schedule_metadata, rf_stream and tile rows."""

    obsid: int
    stoptime: int
    obsname: str
    channels: list[int]  # the 24 receiver channel numbers, ascending
    gain_control_value: float
    calibration: bool = False
    calibrators: str | None = None  # the calibrator source name(s), e.g. "HydA"
    creator: str | None = None
    projectid: str | None = None
    mode: str | None = None
    tiles: list[TileInfo] = field(default_factory=list)


@dataclass
class Fit:
    """One calibration_fits row: a fit of one observation."""

    fitid: int
    obsid: int
    fit_time: datetime
    creator: str
    code_version: str | None = None
    fit_niter: int | None = None
    fit_limit: float | None = None
    source_list: str | None = None
    num_sources: int | None = None
    calibration_command: str | None = None
    gain_max_cutoff: float | None = None


@dataclass
class SolutionRow:
    """One calibration_solutions row (one tile of one fit); NaN everywhere for a flagged tile."""

    tileid: int
    x_delay_m: float
    x_intercept: float
    x_gains: list[float]
    y_delay_m: float
    y_intercept: float
    y_gains: list[float]
    x_gains_pol0: list[float] | None = None
    x_gains_pol1: list[float] | None = None
    y_gains_pol0: list[float] | None = None
    y_gains_pol1: list[float] | None = None
    x_gains_sigma_resid: list[float] | None = None
    y_gains_sigma_resid: list[float] | None = None
    x_phase_sigma_resid: float | None = None
    x_phase_chi2dof: float | None = None
    x_phase_fit_quality: float | None = None
    y_phase_sigma_resid: float | None = None
    y_phase_chi2dof: float | None = None
    y_phase_fit_quality: float | None = None
    x_gains_fit_quality: float | None = None
    y_gains_fit_quality: float | None = None


SOLUTION_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SolutionRow))
