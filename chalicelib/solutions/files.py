"""A fit's own hyperdrive solution files: what each covers (coarse channels, chanblocks, timeblocks), as recorded.

Every solution file of a fit is recorded when it lands (``calibration_fit_solution_file``), so
``source=file`` answers fetch just the files covering the target's channels, without listing the
bucket. A file's coarse channels come from its CHANBLOCKS Freq (receiver channel n holds
n*1.28 MHz +- 640 kHz, :func:`chalicelib.instrument.receiver_channel_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chalicelib.instrument import COARSE_CHAN_HZ, receiver_channel_of
from chalicelib.solutions.solution import CalibrationSolution


@dataclass(frozen=True)
class SolutionFile:
    """One hyperdrive solution file of a fit in the calibration bucket and what it covers."""

    bucket_key: str
    coarse_channels: tuple[int, ...]  # receiver channels of its chanblocks, ascending
    n_chanblocks: int
    n_timeblocks: int
    chanblock_hz: float  # native chanblock width
    size: int  # bytes


def native_width_hz(freqs_hz: np.ndarray) -> float:
    """The chanblock width of a file: the smallest step between chanblocks of one coarse channel (1.28 MHz if one each)."""
    freqs = np.sort(np.asarray(freqs_hz, dtype=np.float64))
    if freqs.size < 2 or np.isnan(freqs).any():
        return COARSE_CHAN_HZ
    same = np.diff(receiver_channel_of(freqs)) == 0
    steps = np.diff(freqs)[same & (np.diff(freqs) > 0)]
    return float(np.round(steps.min())) if steps.size else COARSE_CHAN_HZ


def describe(bucket_key: str, sol: CalibrationSolution, size: int) -> SolutionFile:
    """What a read solution file covers; refuses one without CHANBLOCKS frequencies (its channels are unknown)."""
    if sol.n_chans == 0 or np.isnan(sol.freqs_hz).any():
        raise ValueError(f"{bucket_key} has no CHANBLOCKS frequencies: its coarse channels are unknown")
    channels = tuple(int(c) for c in np.unique(receiver_channel_of(sol.freqs_hz)))
    return SolutionFile(bucket_key=bucket_key, coarse_channels=channels, n_chanblocks=sol.n_chans,
                        n_timeblocks=sol.n_times, chanblock_hz=native_width_hz(sol.freqs_hz), size=int(size))


def describe_bytes(bucket_key: str, raw: bytes) -> SolutionFile:
    """What a hyperdrive solution file (its bytes) covers."""
    from chalicelib.formats.hyperdrive import read_hyperdrive

    return describe(bucket_key, read_hyperdrive(raw), len(raw))


def covering(files: Sequence[SolutionFile], channels: Sequence[int]) -> list[SolutionFile]:
    """The files holding any of the channels (only these are fetched for a target), in key order."""
    wanted = set(int(c) for c in channels)
    return sorted((f for f in files if wanted & set(f.coarse_channels)), key=lambda f: f.bucket_key)
