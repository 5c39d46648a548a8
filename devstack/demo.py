"""A realistic, deterministic month (or years) of MWA telescope data, and the seeding of a database with it.

``generate()`` builds observations and calibration fits around the real 256-tile observation
1457904016 (March 2026), whose metafits carries a real calvin fit of its calibrator 1457865688:

- The array is the real one: the tiles, receivers (Rx 1..34 without 12 and 16) and slots of the
  1457904016 metafits (``n_tiles`` keeps whole receivers, those with the lowest tile ids first).
- Calibrators: 4-6 a day of HydA, PicA, 3C444, CenA, ForA and VirA, each observed for 120 s near
  its transit at MWA (sidereal time computed from the GPS time), named as real ones are
  ("Cal_HydA_Ch121", "AllSky_cal_HydA" for picket-fence sets). Channel sets: 24 contiguous
  channels around centre 69, 93, 121, 145 or 169 (cc-12 .. cc+11, as in the real metafits), or
  one of two picket-fence sets (55, 60, .., 170 as in obs 1369821496, and 62, 67, .., 177). About a
  quarter of calibrator slots are two back-to-back observations of the source at two channel sets.
- Targets in between (EoR0/1/2, GLEAM-X, SMART, pulsars): 120, 296 or 600 s, mostly at the
  channels of the calibrator before them; 12 % are 128-tile subarray observations (half the
  receivers; Antenna renumbered 0..127 by tile id, as real metafits number them).
- Attenuation (gain_control_value): per day 1.0 dB (85 %), 2.0 (10 %) or 0.0 (5 %), and 5 % of
  targets at another value than their day's.
- Fits: 'calvin' (fitid = fit time in Unix microseconds, code 1.1.3, 1.1.0 more than a year before
  the end) and the older 'mwa' pipeline (fitid = Unix seconds, code 0.17.69 / 0.17.51; 60 % of its
  fits of a back-to-back pair span both observations: one fitid, two obsids). 'mwa' fits are 25 %
  of the last two years and 85 % before. Fit time 3 min .. 4 h after the observation ends; 15 %
  of calibrators are fitted again 1 h .. 7 days later by calvin. Calibrators ending in the last 3 h
  are not fitted yet (and 2 % at random), so there is always something to request. One fit in the
  middle has every tile failed (all NaN): the edge case.
- Solutions: each tile's delay is a stable offset + slow drift (2 % of tiles, 0.3-1.5 m over the
  span) + steps (one event per 10 days, 0.5-4 m) + daily noise (1.5 cm) + fit noise (0.5 cm), X
  and Y apart. The stable offsets are anchored on the real fit: tiles solved there keep its delays,
  intercepts and gain levels (so the real fit sits on the demo's trends), the others get their
  receiver's median delay (the fibre offset) + a cable offset of N(0, 1.5 m). Everything is
  relative to the reference tile (the lowest unflagged tile id: delay 0, intercept 0 exactly);
  intercepts wrapped to [-pi, pi). Gains (1/|J|) = tile level x a smooth bandpass over frequency
  x a per-tile tilt x 1 % noise; ``*_gains_pol0/1`` zero (as in real rows) or, in 30 % of fits, the
  straight line through each channel's gain with the bandpass slope. Phase fit quality = k/384
  (as real ones are), mostly ~0.9, 2 % of tiles poor; gains fit quality k/24, mostly 1.
  Flagged tiles (the metafits' 39, a few flagging episodes of 1-10 days, and ~1 random failure per
  fit) are all-NaN rows.
- The real data: observation 1457904016 from its metafits, and its calibrator 1457865688 as an
  observation of PicA (at 10:41 UTC on 2026-03-18 PicA was 0.9 h past transit, HydA 3 h before
  it), 120 s, the target's tiles and channels (109..132), 1.0 dB, flagged = the tiles the real fit
  has as NaN; the fit 1773831785589944 (calvin 1.1.3, CALDTIME) with the CALIBDATA rows exactly.

Everything is a function of the seed (``numpy.random.default_rng``): the schedule from
``default_rng(seed)``, each fit's noise from ``default_rng([seed, 1, fit index])``. Solution rows are
computed when asked for (``DemoData.fits[i]``), never all kept: five years are ~20,000 fits of 256
tiles, which as Python lists would need tens of GB.

``python -m devstack.demo [--days N] [--tiles N] [--seed S]`` seeds the database the ``CALIB_DB_*``
variables name (migrating it first).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from chalicelib import gpstime
from chalicelib.instrument import COARSE_CHAN_HZ
from chalicelib.records import SOLUTION_COLUMNS, Fit, Observation, SolutionRow
from chalicelib.solutions import TileInfo

PROJECT = Path(__file__).resolve().parent.parent

DAY_S = 86400
SIDEREAL_RATE = 1.00273790935  # sidereal hours per solar hour

REAL_TARGET_OBSID = 1457904016
REAL_CAL_OBSID = 1457865688
REAL_FITID = 1773831785589944
REAL_CAL_SOURCE = "PicA"
REAL_CAL_EXPOSURE = 120
DEFAULT_SEED = 20260318

CAL_EXPOSURE = 120
SOURCES = {  # name: (RA hours, weight when choosing the day's calibrators)
    "HydA": (9.3016, 0.21), "PicA": (5.3290, 0.21), "3C444": (22.2451, 0.21),
    "CenA": (13.4243, 0.13), "ForA": (3.3788, 0.12), "VirA": (12.5137, 0.12),
}
CENTRE_CHANNELS = (69, 93, 121, 145, 169)
CENTRE_WEIGHTS = (0.1, 0.2, 0.3, 0.25, 0.15)
PICKET_FENCES = (tuple(range(55, 171, 5)), tuple(range(62, 178, 5)))
TARGET_FIELDS = (  # (name, project, mode, weight)
    ("EoR0", "G0009", "MWAX_CORRELATOR", 0.25), ("EoR1", "G0009", "MWAX_CORRELATOR", 0.2),
    ("EoR2", "G0009", "MWAX_CORRELATOR", 0.1), ("GLEAMX_DEC-27", "G0008", "MWAX_CORRELATOR", 0.2),
    ("SMART_2", "G0057", "MWAX_VCS", 0.1), ("_PSR_J1453-6413", "C001", "MWAX_BEAMFORMER", 0.1),
    ("_PSR_J0437-4715", "C001", "MWAX_BEAMFORMER", 0.05),
)
TARGET_EXPOSURES = (120, 296, 600)
GAIN_VALUES = (1.0, 2.0, 0.0)
GAIN_WEIGHTS = (0.85, 0.10, 0.05)
CALVIN_SOURCE_LIST = "GGSM_updated.fits"
MWA_SOURCE_LIST = "srclist_pumav3_EoR0aegean_EoR1pietro+ForA.txt"


def _utc_midnight_gps(gps: int) -> int:
    """The GPS time of the UTC midnight that starts the day of ``gps``."""
    unix = gpstime.gps_to_unix(gps)
    return gpstime.unix_to_gps(unix - unix % DAY_S)


DEFAULT_END_GPS = _utc_midnight_gps(REAL_TARGET_OBSID) + 4 * DAY_S  # 2026-03-22 00:00 UTC


def contiguous_channels(centre: int) -> list[int]:
    """The 24 channels of a contiguous band with this centre channel (cc-12 .. cc+11)."""
    return list(range(centre - 12, centre + 12))


def centre_channel(channels: Sequence[int]) -> int:
    return sorted(channels)[len(channels) // 2]


def fixtures_dir() -> Path:
    """The real MWA files: ``MWA_FIXTURES_DIR`` or ``../shared/fixtures/mwa`` beside the project."""
    return Path(os.environ.get("MWA_FIXTURES_DIR") or PROJECT.parent / "shared" / "fixtures" / "mwa")


def real_metafits_path() -> Path:
    """The real 1457904016 metafits."""
    path = fixtures_dir() / str(REAL_TARGET_OBSID) / f"{REAL_TARGET_OBSID}_metafits.fits"
    if not path.exists():
        raise FileNotFoundError(f"the demo needs the real metafits {path} (shared/ beside the project, "
                                f"or MWA_FIXTURES_DIR)")
    return path


# --------------------------------------------------------------------------------------------
# The result


@dataclass
class FitSpec:
    """How to make one calibration_fits row's solutions (kept instead of the rows themselves)."""

    fit: Fit
    obs_index: int  # into DemoData.observations
    key: int  # the per-fit random stream
    kind: str = "normal"  # "normal", "all_nan" or "real"
    extra_flagged: tuple[int, ...] = ()  # array indices of tiles that failed in this fit
    lines: bool = False  # pol0/pol1 straight lines instead of zeros
    rows: list[SolutionRow] | None = None  # the real fit's rows


class FitList(Sequence):
    """The fits of a DemoData as a read-only list of ``(Fit, list[SolutionRow])`` pairs.

    Rows are computed on each access (deterministically), so five years fit in memory;
    ``columns(i)`` gives the same values as numpy columns (what seeding writes).
    """

    def __init__(self, specs: list[FitSpec], solver: _Solver) -> None:
        self.specs = specs
        self._solver = solver

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        spec = self.specs[index]
        if spec.rows is not None:
            return spec.fit, list(spec.rows)
        return spec.fit, columns_to_rows(self._solver.columns(spec))

    def __iter__(self) -> Iterator[tuple[Fit, list[SolutionRow]]]:
        for i in range(len(self)):
            yield self[i]

    @property
    def records(self) -> list[Fit]:
        """The Fit records alone (cheap)."""
        return [s.fit for s in self.specs]

    def columns(self, index: int) -> dict[str, np.ndarray]:
        spec = self.specs[index]
        return rows_to_columns(spec.rows) if spec.rows is not None else self._solver.columns(spec)

    def flagged_tileids(self, index: int) -> set[int]:
        """Tile ids that are NaN rows in this fit (the observation's flagged tiles and the fit's failures)."""
        spec = self.specs[index]
        if spec.rows is not None:
            return {r.tileid for r in spec.rows if math.isnan(r.x_delay_m)}
        ids = self._solver.tile_ids_of(spec)
        return {int(t) for t in ids[self._solver.flagged_mask(spec)]}


@dataclass
class DemoData:
    """Generated observations and fits; see the module doc."""

    observations: list[Observation]
    fits: FitList
    seed: int
    days: int
    start_gps: int
    end_gps: int
    n_tiles: int
    uncalibrated: list[int] = field(default_factory=list)  # calibrator obsids with no fit
    real_included: bool = False

    @property
    def calibrators(self) -> list[Observation]:
        return [o for o in self.observations if o.calibration]

    def day_of(self, obsid: int) -> int:
        return int((obsid - self.start_gps) // DAY_S)


def rows_to_columns(rows: Sequence[SolutionRow]) -> dict[str, Any]:
    """SolutionRows as numpy columns (a column that is None in every row stays None)."""
    out: dict[str, Any] = {"tileid": np.array([r.tileid for r in rows], dtype=np.int64)}
    for c in SOLUTION_COLUMNS[1:]:
        values = [getattr(r, c) for r in rows]
        present = [v for v in values if v is not None]
        if not present:
            out[c] = None
            continue
        if len(present) < len(values):  # a NULL among values: NaN in its place
            fill = [math.nan] * len(present[0]) if isinstance(present[0], list) else math.nan
            values = [fill if v is None else v for v in values]
        out[c] = np.array(values, dtype=np.float64)
    return out


def columns_to_rows(columns: dict[str, Any]) -> list[SolutionRow]:
    """numpy columns as SolutionRows (Python floats, NaN kept)."""
    tileids = [int(t) for t in columns["tileid"]]
    lists = {c: (None if columns.get(c) is None else columns[c].tolist()) for c in SOLUTION_COLUMNS[1:]}
    rows = []
    for i, tileid in enumerate(tileids):
        rows.append(SolutionRow(tileid=tileid, **{c: (None if v is None else v[i]) for c, v in lists.items()}))
    return rows


# --------------------------------------------------------------------------------------------
# The array and its physics


def _bandpass(nu_hz: np.ndarray) -> np.ndarray:
    """A smooth relative bandpass of 1/|J| over 70..300 MHz (~0.5 .. 1.3), 1 near 150 MHz."""
    x = (np.asarray(nu_hz) / 1e6 - 150.0) / 100.0
    return 1.0 + 0.45 * np.tanh(3.0 * x) - 0.25 * x * x + 0.015 * np.sin(2 * np.pi * np.asarray(nu_hz) / 7.3e6)


def _bandpass_slope(nu_hz: np.ndarray) -> np.ndarray:
    """d(bandpass)/d(nu), per Hz."""
    nu = np.asarray(nu_hz, dtype=np.float64)
    h = 1e3
    return (_bandpass(nu + h) - _bandpass(nu - h)) / (2 * h)


def _wrap(phase: np.ndarray) -> np.ndarray:
    """Wrap to [-pi, pi)."""
    return (phase + np.pi) % (2 * np.pi) - np.pi


@dataclass
class _ArrayModel:
    """Per-tile state of the generated array (indices = position in ``tiles``)."""

    tiles: list[TileInfo]
    tile_ids: np.ndarray
    base_flagged: np.ndarray
    base_dx: np.ndarray
    base_dy: np.ndarray
    base_ix: np.ndarray
    base_iy: np.ndarray
    scale_x: np.ndarray
    scale_y: np.ndarray
    tilt_x: np.ndarray
    tilt_y: np.ndarray
    drift_x: np.ndarray  # metres per second
    drift_y: np.ndarray
    ev_tile: np.ndarray  # step events
    ev_time: np.ndarray
    ev_d: np.ndarray  # (E, 4): dx, dy, ix, iy
    ep_tile: np.ndarray  # flagging episodes
    ep_start: np.ndarray
    ep_end: np.ndarray
    t_anchor: int

    @property
    def n(self) -> int:
        return len(self.tiles)

    def steps(self, t: float) -> np.ndarray:
        """(4, N) sum of the step events up to t, minus those up to the anchor (the real fit)."""
        on = (self.ev_time <= t).astype(np.float64) - (self.ev_time <= self.t_anchor).astype(np.float64)
        out = np.zeros((4, self.n))
        if self.ev_tile.size:
            for k in range(4):
                out[k] = np.bincount(self.ev_tile, weights=self.ev_d[:, k] * on, minlength=self.n)
        return out

    def flagged_at(self, t: float) -> np.ndarray:
        mask = self.base_flagged.copy()
        if self.ep_tile.size:
            active = (self.ep_start <= t) & (t < self.ep_end)
            mask[self.ep_tile[active]] = True
        return mask


def _select_tiles(all_tiles: list[TileInfo], n_tiles: int | None) -> list[TileInfo]:
    """Whole receivers, those with the lowest tile ids first; Antenna renumbered by tile id if cut."""
    if n_tiles is None or n_tiles >= len(all_tiles):
        if n_tiles is not None and n_tiles != len(all_tiles):
            raise ValueError(f"n_tiles must be at most {len(all_tiles)}")
        return list(all_tiles)
    if n_tiles < 8 or n_tiles % 8:
        raise ValueError("n_tiles must be a positive multiple of 8 (whole receivers)")
    by_rx: dict[int, list[TileInfo]] = {}
    for t in all_tiles:
        by_rx.setdefault(t.rx, []).append(t)
    order = sorted(by_rx, key=lambda rx: min(t.tile_id for t in by_rx[rx]))
    chosen = [t for rx in order[: n_tiles // 8] for t in by_rx[rx]]
    return _renumber(chosen)


def _renumber(tiles: Sequence[TileInfo]) -> list[TileInfo]:
    """Antenna 0..N-1 in tile-id order, as real metafits number them."""
    return [TileInfo(antenna=i, tile_id=t.tile_id, name=t.name, rx=t.rx, slot=t.slot, flagged=t.flagged)
            for i, t in enumerate(sorted(tiles, key=lambda t: t.tile_id))]


def _build_model(rng: np.random.Generator, tiles: list[TileInfo], real_rows: dict[int, SolutionRow],
                 real_channels: list[int], start: int, end: int) -> _ArrayModel:
    n = len(tiles)
    ids = np.array([t.tile_id for t in tiles])
    rx = np.array([t.rx for t in tiles])
    span = max(end - start, DAY_S)

    def real(attr: str) -> np.ndarray:
        return np.array([getattr(real_rows[t], attr) if t in real_rows else math.nan for t in ids], dtype=float)

    rdx, rdy, rix, riy = real("x_delay_m"), real("y_delay_m"), real("x_intercept"), real("y_intercept")
    shape_real = _bandpass(np.asarray(real_channels) * COARSE_CHAN_HZ)

    def level(attr: str) -> np.ndarray:
        out = np.full(n, math.nan)
        for i, t in enumerate(ids):
            row = real_rows.get(int(t))
            if row is not None and getattr(row, attr) is not None:
                g = np.asarray(getattr(row, attr), dtype=float)
                if np.isfinite(g).any():
                    out[i] = float(np.nanmedian(g / shape_real))
        return out

    sx, sy = level("x_gains"), level("y_gains")
    # Receivers: the fibre offset (median delay of its solved tiles) and the gain level.
    cable = rng.normal(0.0, 1.5, n)
    cable_y = cable + rng.normal(0.0, 0.3, n)
    fibre_random = rng.normal(0.0, 1.0, n)
    level_random = np.exp(rng.normal(np.log(1.5), 0.2, n))
    jitter = np.exp(rng.normal(0.0, 0.1, (2, n)))
    phases = rng.uniform(-np.pi, np.pi, (2, n))
    for r in np.unique(rx):
        m = rx == r
        fx = np.nanmedian(rdx[m]) if np.isfinite(rdx[m]).any() else fibre_random[m][0]
        fy = np.nanmedian(rdy[m]) if np.isfinite(rdy[m]).any() else fx
        lx = np.nanmedian(sx[m]) if np.isfinite(sx[m]).any() else level_random[m][0]
        ly = np.nanmedian(sy[m]) if np.isfinite(sy[m]).any() else lx
        rdx[m & ~np.isfinite(rdx)] = fx + cable[m & ~np.isfinite(rdx)]
        rdy[m & ~np.isfinite(rdy)] = fy + cable_y[m & ~np.isfinite(rdy)]
        sx[m & ~np.isfinite(sx)] = lx * jitter[0][m & ~np.isfinite(sx)]
        sy[m & ~np.isfinite(sy)] = ly * jitter[1][m & ~np.isfinite(sy)]
    rix = np.where(np.isfinite(rix), rix, phases[0])
    riy = np.where(np.isfinite(riy), riy, phases[1])

    n_drift = max(2, round(0.02 * n))
    drift_x = np.zeros(n)
    drift_y = np.zeros(n)
    who = rng.choice(n, n_drift, replace=False)
    amp = rng.uniform(0.3, 1.5, n_drift) * rng.choice([-1.0, 1.0], n_drift)
    drift_x[who] = amp / span
    drift_y[who] = amp * rng.uniform(0.8, 1.2, n_drift) / span

    n_ev = max(3, round((end - start) / DAY_S / 10))
    ev_tile = rng.integers(0, n, n_ev)
    ev_time = rng.uniform(start, end, n_ev)
    size = rng.uniform(0.5, 4.0, n_ev) * rng.choice([-1.0, 1.0], n_ev)
    ev_d = np.stack([size, size + rng.normal(0, 0.05, n_ev), rng.uniform(-np.pi, np.pi, n_ev),
                     rng.uniform(-np.pi, np.pi, n_ev)], axis=1)

    base_flagged = np.array([t.flagged for t in tiles])
    n_ep = max(2, round((end - start) / DAY_S / 6))
    candidates = np.flatnonzero(~base_flagged)
    ep_tile = rng.choice(candidates, n_ep) if candidates.size else np.zeros(0, int)
    ep_start = rng.uniform(start, end, ep_tile.size)
    ep_end = ep_start + rng.uniform(1, 10, ep_tile.size) * DAY_S

    return _ArrayModel(
        tiles=tiles, tile_ids=ids, base_flagged=base_flagged, base_dx=rdx, base_dy=rdy, base_ix=rix, base_iy=riy,
        scale_x=sx, scale_y=sy, tilt_x=rng.normal(0, 0.08, n), tilt_y=rng.normal(0, 0.08, n),
        drift_x=drift_x, drift_y=drift_y, ev_tile=ev_tile, ev_time=ev_time, ev_d=ev_d,
        ep_tile=ep_tile, ep_start=ep_start, ep_end=ep_end, t_anchor=REAL_CAL_OBSID,
    )


class _Solver:
    """Makes a generated fit's solution columns, all tiles at once."""

    def __init__(self, seed: int, model: _ArrayModel, observations: list[Observation], start_gps: int) -> None:
        self.seed = seed
        self.model = model
        self.observations = observations
        self.start_gps = start_gps
        self._flag_cache: dict[int, np.ndarray] = {}

    def tile_ids_of(self, spec: FitSpec) -> np.ndarray:
        return self.model.tile_ids

    def flagged_mask(self, spec: FitSpec) -> np.ndarray:
        obs = self.observations[spec.obs_index]
        mask = np.array([t.flagged for t in obs.tiles])
        if spec.kind == "all_nan":
            mask[:] = True
        if spec.extra_flagged:
            mask[list(spec.extra_flagged)] = True
        return mask

    def columns(self, spec: FitSpec) -> dict[str, np.ndarray]:
        m = self.model
        n = m.n
        obs = self.observations[spec.obs_index]
        t = obs.obsid
        day = int((t - self.start_gps) // DAY_S)
        rng = np.random.default_rng([self.seed, 1, spec.key])
        day_rng = np.random.default_rng([self.seed, 2, day])
        nu = np.asarray(obs.channels, dtype=np.float64) * COARSE_CHAN_HZ
        k = nu.size

        day_d = day_rng.normal(0.0, 0.015, (2, n))
        day_i = day_rng.normal(0.0, 0.03, (2, n))
        day_g = 1.0 + day_rng.normal(0.0, 0.01, (2, n))
        steps = m.steps(t)
        dt = float(t - m.t_anchor)
        dx = m.base_dx + m.drift_x * dt + steps[0] + day_d[0] + rng.normal(0.0, 0.005, n)
        dy = m.base_dy + m.drift_y * dt + steps[1] + day_d[1] + rng.normal(0.0, 0.005, n)
        ix = m.base_ix + steps[2] + day_i[0] + rng.normal(0.0, 0.02, n)
        iy = m.base_iy + steps[3] + day_i[1] + rng.normal(0.0, 0.02, n)

        shape = _bandpass(nu)
        common = 1.0 + rng.normal(0.0, 0.02)
        rel = (nu - 154e6) / 1e8
        gx = (m.scale_x[:, None] * shape * (1 + m.tilt_x[:, None] * rel) * day_g[0][:, None] * common
              * (1 + rng.normal(0.0, 0.008, (n, k))))
        gy = (m.scale_y[:, None] * shape * (1 + m.tilt_y[:, None] * rel) * day_g[1][:, None] * common
              * (1 + rng.normal(0.0, 0.008, (n, k))))

        if spec.lines:
            slope = _bandpass_slope(nu) / shape
            px1 = gx * slope * (1 + rng.normal(0.0, 0.2, (n, k)))
            py1 = gy * slope * (1 + rng.normal(0.0, 0.2, (n, k)))
            px0, py0 = gx - px1 * nu, gy - py1 * nu
        else:
            px0 = px1 = py0 = py1 = np.zeros((n, k))

        poor = rng.random(n) < 0.02
        p_ok = np.where(poor, rng.uniform(0.3, 0.75, n), rng.uniform(0.86, 0.95, n))
        pq = rng.binomial(384, np.stack([p_ok, np.clip(p_ok + rng.normal(0, 0.01, n), 0, 1)])) / 384.0
        gq = rng.binomial(24, np.where(poor, 0.8, 0.997), (2, n)) / 24.0
        sig = rng.gamma(4.0, 0.03, (2, n)) * np.where(poor, 3.0, 1.0)
        chi2 = sig * sig * rng.uniform(0.8, 1.25, (2, n))
        gsig = np.abs(rng.normal(0.012, 0.004, (2, n, k))) + 0.002

        flagged = self.flagged_mask(spec)
        good = np.flatnonzero(~flagged)
        if good.size:
            ref = good[np.argmin(m.tile_ids[good])]
            dx, dy = dx - dx[ref], dy - dy[ref]
            ix, iy = _wrap(ix - ix[ref]), _wrap(iy - iy[ref])
            dx[ref] = dy[ref] = ix[ref] = iy[ref] = 0.0
        cols: dict[str, np.ndarray] = {
            "tileid": m.tile_ids.astype(np.int64),
            "x_delay_m": dx, "x_intercept": ix, "x_gains": gx,
            "y_delay_m": dy, "y_intercept": iy, "y_gains": gy,
            "x_gains_pol0": px0, "x_gains_pol1": px1, "y_gains_pol0": py0, "y_gains_pol1": py1,
            "x_gains_sigma_resid": gsig[0], "y_gains_sigma_resid": gsig[1],
            "x_phase_sigma_resid": sig[0], "x_phase_chi2dof": chi2[0], "x_phase_fit_quality": pq[0],
            "y_phase_sigma_resid": sig[1], "y_phase_chi2dof": chi2[1], "y_phase_fit_quality": pq[1],
            "x_gains_fit_quality": gq[0], "y_gains_fit_quality": gq[1],
        }
        for c, a in cols.items():
            if c != "tileid":
                a = np.array(a, dtype=np.float64)  # own copy (the zeros are shared)
                a[flagged] = np.nan
                cols[c] = a
        return cols


# --------------------------------------------------------------------------------------------
# The schedule


@dataclass
class _Meta:
    kind: str  # "cal", "target", "real_cal", "real_target"
    source: str | None = None
    pair: int | None = None  # back-to-back pair id (calibrators)


def _snap(t: float) -> int:
    """Up to the next multiple of 8 s (MWA obsids are)."""
    return int(math.ceil(t / 8.0)) * 8


def generate(days: int = 30, seed: int = DEFAULT_SEED, n_tiles: int | None = None,
             end_gps: int | None = None, calibrators_per_day: tuple[int, int] = (4, 6)) -> DemoData:
    """A deterministic ``days``-long stretch of observations and fits ending at ``end_gps``
    (default: 2026-03-22 00:00 UTC, four days after the real observation 1457904016).

    ``calibrators_per_day`` (lowest, highest) sets how busy the schedule is: the default gives
    about 7 fits a day; (6, 10) about 11, i.e. ~20,000 fits in five years, as benchmarks want.
    A day with more calibrators than there are sources observes some sources twice."""
    from chalicelib.formats.metafits import (calibdata_rows, fit_from_metafits, observation_from_metafits,
                                             read_metafits)

    if days < 1:
        raise ValueError("days must be at least 1")
    cal_lo, cal_hi = calibrators_per_day
    if not 1 <= cal_lo <= cal_hi:
        raise ValueError(f"calibrators_per_day must be (lowest, highest) with 1 <= lowest <= highest, "
                         f"got {calibrators_per_day}")
    end = int(DEFAULT_END_GPS if end_gps is None else end_gps)
    start = end - days * DAY_S
    rng = np.random.default_rng(seed)

    info = read_metafits(real_metafits_path())
    real_target = observation_from_metafits(info)
    real_rows = calibdata_rows(info)
    real_fit = fit_from_metafits(info)
    real_by_tile = {r.tileid: r for r in real_rows}
    real_nan = {r.tileid for r in real_rows if math.isnan(r.x_delay_m)}
    real_cal = Observation(
        obsid=REAL_CAL_OBSID, stoptime=REAL_CAL_OBSID + REAL_CAL_EXPOSURE,
        obsname=f"Cal_{REAL_CAL_SOURCE}_Ch{centre_channel(real_target.channels)}", channels=list(real_target.channels),
        gain_control_value=1.0, calibration=True, calibrators=REAL_CAL_SOURCE, creator="andrew",
        projectid="D0006", mode="MWAX_CORRELATOR",
        tiles=[TileInfo(t.antenna, t.tile_id, t.name, t.rx, t.slot, t.tile_id in real_nan) for t in info.tiles],
    )
    reals = [(o, _Meta("real_cal" if o.calibration else "real_target", o.calibrators))
             for o in (real_cal, real_target) if start <= o.obsid and o.stoptime <= end]

    tiles = _select_tiles(info.tiles, n_tiles)
    model = _build_model(rng, tiles, real_by_tile, real_target.channels, start, end)
    half = len(tiles) // 16 * 8
    by_rx: dict[int, list[TileInfo]] = {}
    for t in tiles:
        by_rx.setdefault(t.rx, []).append(t)
    rx_order = sorted(by_rx, key=lambda r: min(t.tile_id for t in by_rx[r]))
    subarrays = ([[t for r in rx_order[: half // 8] for t in by_rx[r]], [t for r in rx_order[half // 8:] for t in by_rx[r]]]
                 if half >= 8 else [])

    tile_cache: dict[tuple[int, bytes], list[TileInfo]] = {}

    def tiles_at(t: int, subarray: int | None) -> list[TileInfo]:
        mask = model.flagged_at(t)
        key = (-1 if subarray is None else subarray, np.packbits(mask).tobytes())
        got = tile_cache.get(key)
        if got is None:
            flagged_ids = set(model.tile_ids[mask].tolist())
            chosen = tiles if subarray is None else _renumber(subarrays[subarray])
            got = [t if t.flagged == (t.tile_id in flagged_ids) else
                   TileInfo(t.antenna, t.tile_id, t.name, t.rx, t.slot, t.tile_id in flagged_ids) for t in chosen]
            tile_cache[key] = got
        return got

    blocked = [(o.obsid - 8, o.stoptime + 8) for o, _ in reals]
    src_names = list(SOURCES)
    src_weights = np.array([SOURCES[s][1] for s in src_names])
    src_weights /= src_weights.sum()
    field_weights = np.array([f[3] for f in TARGET_FIELDS])
    field_weights /= field_weights.sum()

    observations: list[Observation] = []
    metas: list[_Meta] = []
    pair_id = 0

    def add(obs: Observation, meta: _Meta) -> bool:
        if any(obs.obsid < b1 and obs.stoptime > b0 for b0, b1 in blocked):
            return False
        observations.append(obs)
        metas.append(meta)
        return True

    for d in range(days):
        day0 = start + d * DAY_S
        day1 = day0 + DAY_S
        gain = float(rng.choice(GAIN_VALUES, p=GAIN_WEIGHTS))
        n_cc = int(rng.integers(1, 3))
        day_ccs = [int(c) for c in rng.choice(CENTRE_CHANNELS, n_cc, replace=False, p=CENTRE_WEIGHTS)]
        picket_day = rng.random() < 0.15
        n_cal = int(rng.integers(cal_lo, cal_hi + 1))
        chosen = rng.choice(len(src_names), n_cal, replace=n_cal > len(src_names), p=src_weights)
        lst0 = gpstime.lst_hours(day0)
        plans = []
        for s in chosen:
            name = src_names[int(s)]
            wait_h = ((SOURCES[name][0] - lst0) % 24.0) / SIDEREAL_RATE
            at = day0 + wait_h * 3600 + rng.normal(0.0, 0.6) * 3600
            at = min(max(at, day0), day1 - 1800)
            if picket_day and rng.random() < 0.7:
                chans = list(PICKET_FENCES[int(rng.integers(0, len(PICKET_FENCES)))])
            else:
                chans = contiguous_channels(day_ccs[int(rng.integers(0, len(day_ccs)))])
            second = None
            if rng.random() < 0.25:
                others = [c for c in CENTRE_CHANNELS if c != centre_channel(chans)]
                second = contiguous_channels(int(rng.choice(others)))
            plans.append((at, name, chans, second))
        plans.sort(key=lambda p: p[0])

        cursor = day0
        for j, (at, name, chans, second) in enumerate(plans + [(day1, None, None, None)]):
            # targets from the cursor up to this calibrator's planned time
            last_chans = observations[-1].channels if observations and metas[-1].kind == "cal" else None
            for _ in range(int(rng.integers(0, 4))):
                s = _snap(cursor + 8 * int(rng.integers(1, 40)))
                exp = int(rng.choice(TARGET_EXPOSURES, p=(0.45, 0.3, 0.25)))
                if s + exp + 8 > min(at, day1):
                    break
                fname, project, mode, _w = TARGET_FIELDS[int(rng.choice(len(TARGET_FIELDS), p=field_weights))]
                if last_chans is not None and rng.random() < 0.85:
                    tchans = list(last_chans)
                else:
                    tchans = contiguous_channels(int(rng.choice(CENTRE_CHANNELS, p=CENTRE_WEIGHTS)))
                tgain = gain if rng.random() < 0.95 else float(rng.choice([g for g in GAIN_VALUES if g != gain]))
                sub = int(rng.integers(0, 2)) if subarrays and rng.random() < 0.12 else None
                label = f"Ch{centre_channel(tchans)}" if tchans[1] - tchans[0] == 1 else "pf"
                obs = Observation(obsid=s, stoptime=s + exp, obsname=f"{fname}_{label}", channels=tchans,
                                  gain_control_value=tgain, calibration=False, calibrators=None,
                                  creator=str(rng.choice(["andrew", "mwa"])), projectid=project, mode=mode,
                                  tiles=tiles_at(s, sub))
                add(obs, _Meta("target"))
                cursor = s + exp
            if name is None:
                break
            this_pair = None
            if second is not None:
                pair_id += 1
                this_pair = pair_id
            for chans_k in ([chans] if second is None else [chans, second]):
                s = _snap(max(at, cursor + 8))
                if s + CAL_EXPOSURE > day1:
                    break
                label = f"Cal_{name}_Ch{centre_channel(chans_k)}" if chans_k[1] - chans_k[0] == 1 else f"AllSky_cal_{name}"
                obs = Observation(obsid=s, stoptime=s + CAL_EXPOSURE, obsname=label, channels=list(chans_k),
                                  gain_control_value=gain, calibration=True, calibrators=name, creator="andrew",
                                  projectid="D0006", mode="MWAX_CORRELATOR", tiles=tiles_at(s, None))
                if add(obs, _Meta("cal", name, this_pair)):
                    cursor = s + CAL_EXPOSURE
                at = cursor

    # the real observations, in time order
    for obs, meta in reals:
        observations.append(obs)
        metas.append(meta)
    order = sorted(range(len(observations)), key=lambda i: observations[i].obsid)
    observations = [observations[i] for i in order]
    metas = [metas[i] for i in order]

    specs = _plan_fits(rng, observations, metas, model, start, end, real_fit, real_rows)
    uncal = sorted({o.obsid for o in observations if o.calibration} - {s.fit.obsid for s in specs})
    solver = _Solver(seed, model, observations, start)
    return DemoData(observations=observations, fits=FitList(specs, solver), seed=seed, days=days,
                    start_gps=start, end_gps=end, n_tiles=len(tiles), uncalibrated=uncal,
                    real_included=any(m.kind == "real_cal" for m in metas))


def _plan_fits(rng: np.random.Generator, observations: list[Observation], metas: list[_Meta], model: _ArrayModel,
               start: int, end: int, real_fit: Fit, real_rows: list[SolutionRow]) -> list[FitSpec]:
    cals = [i for i, m in enumerate(metas) if m.kind == "cal"]
    by_pair: dict[int, list[int]] = {}
    for i in cals:
        if metas[i].pair is not None:
            by_pair.setdefault(metas[i].pair, []).append(i)
    pairs = {ids[0]: ids[1] for ids in by_pair.values() if len(ids) == 2}

    not_yet = {i for i in cals if observations[i].stoptime > end - 3 * 3600}
    if not not_yet and len(cals) > 1:
        not_yet = {cals[-1]}
    singles = [i for i in cals if i not in not_yet and i not in pairs and i not in pairs.values()]
    all_nan = singles[len(singles) // 2] if singles else None
    forced_span = next((i for i in cals if i in pairs and i not in not_yet and pairs[i] not in not_yet), None)
    forced_refit = next((i for i in singles[len(singles) // 3:] if i != all_nan), None)

    specs: list[FitSpec] = []
    used: set[tuple[str, int]] = set()
    covered: set[int] = set()

    def fitid_for(creator: str, unix: float) -> tuple[int, datetime]:
        if creator == "calvin":
            fid = int(round(unix * 1e6))
            while ("calvin", fid) in used:
                fid += 1
            used.add(("calvin", fid))
            return fid, gpstime.fitid_to_datetime(fid)
        fid = int(unix)
        while ("mwa", fid) in used:
            fid += 1
        used.add(("mwa", fid))
        return fid, gpstime.fitid_to_datetime(fid)

    def make(obs_i: int, creator: str, fid: int, when: datetime, kind: str = "normal") -> None:
        obs = observations[obs_i]
        recent = obs.obsid > end - 365 * DAY_S
        if creator == "calvin":
            fit = Fit(fitid=fid, obsid=obs.obsid, fit_time=when, creator="calvin",
                      code_version="1.1.3" if recent else "1.1.0", fit_niter=int(rng.integers(1, 6)), fit_limit=0.0,
                      source_list=CALVIN_SOURCE_LIST, num_sources=1000,
                      calibration_command=(f"hyperdrive di-calibrate -d {obs.obsid}.metafits {obs.obsid}_ch*.fits"
                                           f" -s {CALVIN_SOURCE_LIST} -n 1000 -o hyp_soln_{obs.obsid}.fits"))
        else:
            fit = Fit(fitid=fid, obsid=obs.obsid, fit_time=when, creator="mwa",
                      code_version="0.17.69" if obs.obsid > end - 2 * 365 * DAY_S else "0.17.51",
                      fit_niter=int(rng.integers(10, 60)), fit_limit=50.0, source_list=MWA_SOURCE_LIST,
                      num_sources=int(rng.choice([300, 500])), gain_max_cutoff=5.0,
                      calibration_command=f"fit_calibration_solutions {obs.obsid} --srclist {MWA_SOURCE_LIST}")
        candidates = np.flatnonzero(~np.array([t.flagged for t in obs.tiles]))
        n_extra = min(int(rng.poisson(1.0)), 4, max(candidates.size - 1, 0))
        extra = tuple(sorted(int(x) for x in rng.choice(candidates, n_extra, replace=False))) if n_extra else ()
        specs.append(FitSpec(fit=fit, obs_index=obs_i, key=len(specs), kind=kind, extra_flagged=extra,
                             lines=bool(rng.random() < 0.3)))

    for i, meta in enumerate(metas):
        if meta.kind == "real_cal":
            specs.append(FitSpec(fit=real_fit, obs_index=i, key=len(specs), kind="real", rows=real_rows))
            continue
        if meta.kind != "cal" or i in covered or i in not_yet:
            continue
        if i != forced_refit and i != all_nan and i != forced_span and rng.random() < 0.02:
            continue  # never fitted
        obs = observations[i]
        old = obs.obsid < end - 2 * 365 * DAY_S
        creator = "mwa" if rng.random() < (0.85 if old else 0.25) else "calvin"
        if i == forced_span:
            creator = "mwa"
        span = [i]
        if creator == "mwa" and i in pairs and (i == forced_span or rng.random() < 0.6):
            span = [i, pairs[i]]
        if i == all_nan:
            creator = "calvin"
        last_stop = observations[span[-1]].stoptime
        when_unix = gpstime.gps_to_unix(last_stop) + math.exp(rng.uniform(math.log(180), math.log(4 * 3600)))
        when_unix += rng.uniform(0, 1)
        if when_unix > gpstime.gps_to_unix(end) and i not in (forced_span, forced_refit, all_nan):
            continue  # would be fitted after the end of the data: not yet
        fid, when = fitid_for(creator, when_unix)
        for j in span:
            make(j, creator, fid, when, "all_nan" if i == all_nan else "normal")
            covered.add(j)
        if i != all_nan and (i == forced_refit or rng.random() < 0.15):
            later = when_unix + rng.uniform(3600, 7 * DAY_S)
            if later <= gpstime.gps_to_unix(end):
                fid2, when2 = fitid_for("calvin", later)
                make(i, "calvin", fid2, when2)
    return specs


# --------------------------------------------------------------------------------------------
# The database


def is_seeded() -> bool:
    """Whether the database already holds observations or fits (the demo or anything else)."""
    from chalicelib import db

    rows = db.query("SELECT EXISTS (SELECT 1 FROM mwa_setting) OR EXISTS (SELECT 1 FROM calibration_fits) AS seeded")
    return bool(rows and rows[0]["seeded"])


TILELESS_EVERY = 5  # every 5th generated target is written without observation_tile rows


def tileless_targets(data: DemoData) -> set[int]:
    """The targets written without observation_tile rows (every 5th in time order, never the real one).

    Their tiles come from their metafits through the metadata service, as on the MWA database, so the
    local stack uses that path every day.
    """
    targets = sorted(o.obsid for o in data.observations if not o.calibration and o.obsid != REAL_TARGET_OBSID)
    return set(targets[::TILELESS_EVERY])


def write_metafits(data: DemoData, folder: Path, obsids: Iterable[int]) -> int:
    """Write ``<obsid>_metafits.fits`` (formats.metafits_generate) of the given observations into folder."""
    from chalicelib.formats import metafits_calib, metafits_generate

    folder.mkdir(parents=True, exist_ok=True)
    by_id = {o.obsid: o for o in data.observations}
    for obsid in sorted(obsids):
        obs = by_id[obsid]
        (folder / f"{obsid}_metafits.fits").write_bytes(
            metafits_calib.to_bytes(metafits_generate.generate_metafits(obs, obs.tiles)))
    return len(by_id.keys() & set(obsids))


def seed_database(data: DemoData, progress: bool = False, metafits_dir: Path | None = None) -> dict[str, int]:
    """Write the demo data, one transaction per day (observations replaced; fits already there kept).

    ``tileless_targets`` are written without tile rows; with ``metafits_dir`` their metafits go there
    (what the local metadata server serves).

    Generated solution rows go in one binary COPY per day (``writes.copy_solutions``); the real fit
    through ``writes.insert_fit``. Returns counts of what was written.
    """
    from chalicelib import db
    from chalicelib.db import writes

    t0 = time.perf_counter()
    tileless = tileless_targets(data)
    obs_by_day: dict[int, list[Observation]] = {}
    for obs in data.observations:
        obs_by_day.setdefault(data.day_of(obs.obsid), []).append(replace(obs, tiles=[]) if obs.obsid in tileless
                                                                 else obs)
    fits_by_day: dict[int, list[int]] = {}
    for i, spec in enumerate(data.fits.specs):
        fits_by_day.setdefault(data.day_of(spec.fit.obsid), []).append(i)
    days = sorted(set(obs_by_day) | set(fits_by_day))
    counts = {"observations": 0, "calibrators": 0, "targets": 0, "fits": 0, "solutions": 0, "skipped_fits": 0,
              "days": len(days)}
    fitids: set[int] = set()
    step = max(1, math.ceil(len(days) / 20))
    for n, day in enumerate(days, 1):
        with db.transaction() as tx:
            for obs in obs_by_day.get(day, []):
                writes.insert_observation(tx, obs)
                counts["observations"] += 1
                counts["calibrators" if obs.calibration else "targets"] += 1
            blocks = []
            for i in fits_by_day.get(day, []):
                spec = data.fits.specs[i]
                fit = spec.fit
                if writes.fit_exists(tx, fit.fitid, fit.obsid):
                    counts["skipped_fits"] += 1
                    continue
                if spec.rows is not None:
                    writes.insert_fit(tx, fit, spec.rows)
                    counts["solutions"] += len(spec.rows)
                else:
                    writes.insert_fit(tx, fit, [])
                    blocks.append((fit.fitid, fit.obsid, data.fits.columns(i)))
                counts["fits"] += 1
                fitids.add(fit.fitid)
            counts["solutions"] += writes.copy_solutions(tx, blocks)
        if progress and (n % step == 0 or n == len(days)):
            print(f"[demo] {n}/{len(days)} days: {counts['observations']} observations, {counts['fits']} fits,"
                  f" {counts['solutions']} solution rows, {time.perf_counter() - t0:.1f} s", flush=True)
    counts["fitids"] = len(fitids)
    counts["targets_without_tiles"] = len(tileless)
    if metafits_dir is not None:
        counts["metafits_written"] = write_metafits(data, metafits_dir, tileless)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo",
                                     description="Seed the database (CALIB_DB_*) with generated MWA demo data.")
    parser.add_argument("--days", type=int, default=30, help="days of data (1825 = five years, ~10 GB)")
    parser.add_argument("--tiles", type=int, default=None, help="tiles (a multiple of 8, whole receivers; default 256)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--end-gps", type=int, default=None, help="end of the data (default 2026-03-22 00:00 UTC)")
    parser.add_argument("--calibrators-per-day", type=int, nargs=2, default=(4, 6), metavar=("LOW", "HIGH"),
                        help="calibrator observations a day (default 4 6, ~7 fits a day; 6 10 gives ~11)")
    parser.add_argument("--metafits-dir", type=Path, default=None,
                        help="write the metafits of the targets seeded without tile rows here (metadata server)")
    parser.add_argument("--if-empty", action="store_true", help="do nothing when the database already has data")
    parser.add_argument("--generate-only", action="store_true", help="generate (every fit) and report, write nothing")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    data = generate(days=args.days, seed=args.seed, n_tiles=args.tiles, end_gps=args.end_gps,
                    calibrators_per_day=tuple(args.calibrators_per_day))
    t1 = time.perf_counter()
    first, last = gpstime.gps_to_datetime(data.start_gps), gpstime.gps_to_datetime(data.end_gps)
    print(f"[demo] generated {len(data.observations)} observations ({len(data.calibrators)} calibrators),"
          f" {len(data.fits)} fits of {data.n_tiles} tiles, {first:%Y-%m-%d} .. {last:%Y-%m-%d},"
          f" in {t1 - t0:.1f} s", flush=True)
    if args.generate_only:
        for i in range(len(data.fits)):
            data.fits.columns(i)
        print(f"[demo] computed every fit's solutions in {time.perf_counter() - t1:.1f} s")
        return 0

    from chalicelib import migrate

    migrate.apply()
    if args.if_empty and is_seeded():
        print("[demo] the database already has data; nothing written")
        return 0
    counts = seed_database(data, progress=True, metafits_dir=args.metafits_dir)
    print(f"[demo] seeded in {time.perf_counter() - t1:.1f} s: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
