"""Physical and telescope constants of the MWA, in one place for the science, the formats and the demo."""

from __future__ import annotations

import numpy as np

SPEED_OF_LIGHT = 299_792_458.0  # m/s: delays in metres of light travel <-> seconds
COARSE_CHAN_HZ = 1_280_000.0  # width of one coarse (receiver) channel; channel n is centred on n x this
N_COARSE_CHANNELS = 24  # coarse channels per observation

MWA_LONGITUDE_DEG = 116.67081524  # east, WGS84 (the array centre, as the metafits and mwalib use it)
MWA_LATITUDE_DEG = -26.70331940


def receiver_channel_of(freqs_hz: np.ndarray) -> np.ndarray:
    """Receiver (coarse) channel number n of each fine-channel frequency: n*1.28 MHz +- 640 kHz contains it.

    This is round(freq / 1.28 MHz) with halves rounded up: hyperdrive's first chanblock of channel n
    sits exactly at n*1.28 MHz - 640 kHz, where Python's round-half-even would pick n - 1.
    """
    return np.floor((np.asarray(freqs_hz, dtype=np.float64) + COARSE_CHAN_HZ / 2) / COARSE_CHAN_HZ + 1e-9).astype(
        np.int64
    )
