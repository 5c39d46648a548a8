"""Read one calibrator's hyperdrive solution files and its metafits into :class:`~chalicelib.ingest.fitting.FitInputs`.

The per-coarse-channel hyperdrive files are read with :func:`chalicelib.formats.hyperdrive.read_hyperdrive`
(one CalibrationSolution each), checked against the metafits (same observation, same tile per
Antenna, channels among its CHANNELS), concatenated and sorted by frequency.

Weights
    One weight per chanblock (or per tile and chanblock), >= 0; 0 = unusable. From hyperdrive
    RESULTS (:func:`weights_from_results`): 1 where the convergence value is finite and the
    CHANBLOCKS Flag is 0, 0 where it is NaN (hyperdrive failed to converge) or flagged. The
    convergence value itself (~1e-9 .. 1e-5) is not used as a weight: every chanblock that
    converged to hyperdrive's thresholds is an equally good solution; a Jones that is NaN for
    one tile is unusable for that tile only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from chalicelib.ingest.fitting import FitInputs
from chalicelib.instrument import receiver_channel_of  # noqa: F401 - re-exported: its old home
from chalicelib.solutions import CalibrationSolution

PathOrBytes = str | PathLike[str] | bytes


def weights_from_results(
    results: np.ndarray | None, chanblock_flags: np.ndarray | None = None, n_chanblocks: int | None = None
) -> np.ndarray:
    """Chanblock weights from hyperdrive RESULTS (convergence, NaN = failed) and CHANBLOCKS Flag: 1 usable, 0 not.

    ``results`` may be (chanblocks,) or (timeblocks, chanblocks): a chanblock is usable when it
    converged in at least one timeblock. Missing RESULTS -> every unflagged chanblock has weight 1.
    """
    if results is None:
        if chanblock_flags is None and n_chanblocks is None:
            raise ValueError("need results, chanblock flags or a chanblock count")
        n = len(chanblock_flags) if chanblock_flags is not None else int(n_chanblocks or 0)
        ok = np.ones(n, dtype=bool)
    else:
        res = np.asarray(results, dtype=np.float64)
        ok = np.isfinite(res).any(axis=0) if res.ndim == 2 else np.isfinite(res).reshape(-1)
    if chanblock_flags is not None:
        ok = ok & ~np.asarray(chanblock_flags, dtype=bool).reshape(-1)
    return ok.astype(np.float64)


@dataclass
class _MetafitsTiles:
    tile_ids: np.ndarray  # per Antenna index 0..N-1
    names: list[str]  # TileName per Antenna index
    flagged: np.ndarray
    channels: list[int] | None
    obsid: int | None


def _metafits_tiles(metafits: PathOrBytes | Any) -> _MetafitsTiles:
    """Tile id, name and flag per metafits Antenna, and the receiver channels, via chalicelib.formats.metafits.

    ``metafits`` is a path, the file's bytes, or an already read
    :class:`~chalicelib.formats.metafits.MetafitsInfo`.
    """
    from chalicelib.formats.metafits import MetafitsInfo, read_metafits

    info = metafits if isinstance(metafits, MetafitsInfo) else read_metafits(metafits)
    tiles = sorted(info.tiles, key=lambda t: t.antenna)
    n = (max(t.antenna for t in tiles) + 1) if tiles else 0
    tile_ids = np.full(n, -1, dtype=np.int64)
    names = [""] * n
    flagged = np.ones(n, dtype=bool)
    for t in tiles:
        tile_ids[t.antenna] = t.tile_id
        names[t.antenna] = t.name
        flagged[t.antenna] = bool(t.flagged)
    if (tile_ids < 0).any():
        raise ValueError("metafits Antenna indices are not 0..N-1")
    channels = getattr(info, "channels", None)
    obsid = getattr(info, "obsid", None)
    return _MetafitsTiles(tile_ids, names, flagged, sorted(int(c) for c in channels) if channels else None, obsid)


def check_same_tiles(sol: CalibrationSolution, metafits_names: Sequence[str], label: str = "a solution file") -> None:
    """Refuse solutions of another array layout: each named tile must be the metafits TileName at its Antenna.

    The first mismatching Antenna (lowest index) is named, with both names, in the ValueError.
    Tiles the file does not name (no TileName column) cannot be checked and pass.
    """
    n_ant = len(metafits_names)
    for t in sorted(sol.tiles, key=lambda t: t.antenna):
        if not 0 <= t.antenna < n_ant:
            raise ValueError(f"hyperdrive Antenna {t.antenna} of {label} is not in the metafits ({n_ant} tiles)")
        if t.name and t.name != metafits_names[t.antenna]:
            raise ValueError(
                f"{label} and the metafits describe different arrays: Antenna {t.antenna} is "
                f"{t.name!r} in the solutions but {metafits_names[t.antenna]!r} in the metafits"
            )


def _label(source: PathOrBytes, i: int) -> str:
    """How an error names a solution file: its path, or its place in the list when it came as bytes."""
    return f"solution file {i + 1}" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)


def load_fit_inputs(
    solutions: Sequence[PathOrBytes],
    metafits: PathOrBytes | Any,
    *,
    timeblock: int | None = None,
    progress: Callable[[PathOrBytes], None] | None = None,
) -> FitInputs:
    """Read hyperdrive solution files (one per coarse channel, any order) and the metafits into :class:`FitInputs`.

    Each file's TILES Antenna is matched to the metafits Antenna (so tile ids and flags come from
    the metafits Tile / Flag columns; a hyperdrive TILES Flag also flags the tile); chanblocks of
    all files are concatenated and sorted by frequency; the coarse index of a chanblock is the
    position of its receiver channel in the metafits CHANNELS (ascending). ``timeblock`` picks
    one timeblock; None averages the Jones over timeblocks (NaN-aware; the fixture files have
    one). ``metafits`` may also be an already read ``MetafitsInfo``. ``progress(source)`` is called
    after each solution file is read (command-line progress bars). Refused with ValueError: a
    solution file whose OBSID differs from the metafits GPSTIME (or from the other files), or
    whose TileName at some Antenna is not the metafits one (another array layout).
    """
    from chalicelib.formats.hyperdrive import read_hyperdrive

    if not solutions:
        raise ValueError("no hyperdrive solution files given")
    meta = _metafits_tiles(metafits)
    n_ant = len(meta.tile_ids)
    jones_parts: list[np.ndarray] = []
    freq_parts: list[np.ndarray] = []
    weight_parts: list[np.ndarray] = []
    headers: list[tuple[float, dict[str, Any]]] = []
    hyp_flag = np.zeros(n_ant, dtype=bool)
    obsid = meta.obsid
    for i, source in enumerate(solutions):
        sol = read_hyperdrive(source)
        if np.isnan(sol.freqs_hz).any():
            raise ValueError("hyperdrive solutions without CHANBLOCKS frequencies cannot be fitted")
        if sol.cal_obsid is not None and obsid is not None and sol.cal_obsid != obsid:
            raise ValueError(f"a solution file is of observation {sol.cal_obsid}, not {obsid}")
        if obsid is None:
            obsid = sol.cal_obsid
        check_same_tiles(sol, meta.names, _label(source, i))
        headers.append((float(sol.freqs_hz.min()) if sol.n_chans else math.inf, dict(sol.header)))
        if timeblock is not None:
            j = sol.jones[timeblock]
        elif sol.n_times == 1:
            j = sol.jones[0]
        else:
            with np.errstate(invalid="ignore"), _quiet_mean_warnings():
                j = np.nanmean(sol.jones, axis=0)
        ant = np.array([t.antenna for t in sol.tiles], dtype=np.int64)
        full = np.full((n_ant, sol.n_chans, 4), complex(np.nan, np.nan), dtype=np.complex128)
        full[ant] = j
        hyp_flag[ant[np.array([t.flagged for t in sol.tiles], dtype=bool)]] = True
        jones_parts.append(full)
        freq_parts.append(sol.freqs_hz)
        res = sol.results if timeblock is None or sol.results is None else sol.results[timeblock]
        weight_parts.append(weights_from_results(res, sol.chanblock_flags, sol.n_chans))
        if progress is not None:
            progress(source)

    jones = np.concatenate(jones_parts, axis=1)
    freqs = np.concatenate(freq_parts)
    weights = np.concatenate(weight_parts)
    order = np.argsort(freqs, kind="stable")
    jones, freqs, weights = jones[:, order], freqs[order], weights[order]
    if np.any(np.diff(freqs) <= 0):
        raise ValueError("two solution files hold the same chanblock frequency")

    rx = receiver_channel_of(freqs)
    channels = meta.channels
    if channels:
        chans = np.asarray(channels, dtype=np.int64)
        k = np.searchsorted(chans, rx)
        if np.any(k >= len(chans)) or np.any(chans[np.minimum(k, len(chans) - 1)] != rx):
            missing = sorted(set(rx.tolist()) - set(chans.tolist()))
            raise ValueError(f"solution channels {missing} are not among the metafits CHANNELS {channels}")
        n_coarse = len(chans)
    else:
        chans_found = np.unique(rx)
        k = np.searchsorted(chans_found, rx)
        channels = chans_found.tolist()
        n_coarse = len(chans_found)
    return FitInputs(
        jones=jones,
        freqs_hz=freqs,
        coarse_index=k,
        weights=weights,
        tile_ids=meta.tile_ids,
        tile_flagged=meta.flagged | hyp_flag,
        n_coarse=n_coarse,
        obsid=obsid,
        coarse_channels=[int(c) for c in channels],
        hyperdrive_header=min(headers, key=lambda h: h[0])[1],
    )


@contextmanager
def _quiet_mean_warnings() -> Iterator[None]:
    """Silence numpy's 'Mean of empty slice' (a tile NaN in every timeblock stays NaN)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        yield
