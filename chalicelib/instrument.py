"""Physical and telescope constants of the MWA, in one place for the science, the formats and the demo."""

from __future__ import annotations

SPEED_OF_LIGHT = 299_792_458.0  # m/s: delays in metres of light travel <-> seconds
COARSE_CHAN_HZ = 1_280_000.0  # width of one coarse (receiver) channel; channel n is centred on n x this
N_COARSE_CHANNELS = 24  # coarse channels per observation

MWA_LONGITUDE_DEG = 116.67081524  # east, WGS84 (the array centre, as the metafits and mwalib use it)
MWA_LATITUDE_DEG = -26.70331940
