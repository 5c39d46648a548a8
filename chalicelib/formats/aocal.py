"""AO-cal ("MWAOCAL") binary calibration solutions, as written by mwa-reduce ``calibrate`` and hyperdrive.

Layout (little-endian): a 48-byte header -- 8 bytes ``MWAOCAL\\0``, uint32 fileType (0), uint32
structureType (0), uint32 intervalCount, uint32 antennaCount, uint32 channelCount, uint32
polarizationCount (4), float64 startTime, float64 endTime (GPS seconds, as hyperdrive writes
them) -- then complex128 values as (re, im) float64 pairs in [interval][antenna][channel][pol]
order, pols XX, XY, YX, YY. Size = 48 + 64 * antennas * channels * intervals.

Both directions are whole-array numpy operations: no per-value Python loops.
"""

from __future__ import annotations

import struct

import numpy as np

from chalicelib.solutions.solution import CalibrationSolution, canonical_nan, unnamed_tiles

MAGIC = b"MWAOCAL\0"
HEADER = struct.Struct("<8s6I2d")  # magic, fileType, structureType, intervals, antennas, channels, pols, start, end
HEADER_SIZE = HEADER.size  # 48
N_POLS = 4
_JONES_DTYPE = np.dtype("<c16")  # little-endian complex128 = (re, im) float64 pair


def write_aocal(sol: CalibrationSolution) -> bytes:
    """Encode a solution as an AO-cal file, so tools that read mwa-reduce/hyperdrive .bin files can apply it.

    startTime/endTime are the first time block's start and the last time block's end. Every NaN
    is written as the standard quiet NaN (as hyperdrive writes them); all other values bit-exact.
    """
    n_times, n_tiles, n_chans, n_pols = sol.jones.shape
    if n_pols != N_POLS:
        raise ValueError(f"AO-cal needs 4 polarisations, got {n_pols}")
    start = float(sol.times_gps[0][0]) if n_times else 0.0
    end = float(sol.times_gps[-1][1]) if n_times else 0.0
    header = HEADER.pack(MAGIC, 0, 0, n_times, n_tiles, n_chans, N_POLS, start, end)
    floats = np.ascontiguousarray(sol.jones, dtype=_JONES_DTYPE).view("<f8")
    return header + canonical_nan(floats).tobytes()


def read_aocal(data: bytes) -> CalibrationSolution:
    """Decode AO-cal bytes into a CalibrationSolution, so existing .bin solutions can be read, checked and rewritten.

    An AO-cal file holds only the Jones and one time range, so the rest is left unknown: tiles
    are Antenna 0..N-1 with no name, tile id, receiver or slot (:func:`unnamed_tiles`; none is
    marked flagged: a flagged tile is the NaN one, see ``flagged_antennas``), every interval gets
    the file's (startTime, endTime), frequencies are NaN and the observation id is None. Writing
    the result back gives the same bytes.
    """
    if len(data) < HEADER_SIZE:
        raise ValueError(f"AO-cal file too short: {len(data)} bytes, the header alone is {HEADER_SIZE}")
    magic, file_type, structure_type, n_int, n_ant, n_chan, n_pol, start, end = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise ValueError(f"not an AO-cal file: magic {magic!r}, expected {MAGIC!r}")
    if file_type != 0 or structure_type != 0:
        raise ValueError(f"unsupported AO-cal fileType {file_type} / structureType {structure_type}")
    if n_pol != N_POLS:
        raise ValueError(f"unsupported AO-cal polarizationCount {n_pol}, expected {N_POLS}")
    expected = HEADER_SIZE + 16 * n_int * n_ant * n_chan * n_pol
    if len(data) != expected:
        raise ValueError(
            f"AO-cal size mismatch: {len(data)} bytes, header says {n_int} x {n_ant} x {n_chan} x {n_pol} "
            f"= {expected} bytes"
        )
    jones = np.frombuffer(data, dtype=_JONES_DTYPE, offset=HEADER_SIZE)
    jones = jones.astype(np.complex128).reshape(n_int, n_ant, n_chan, n_pol)
    return CalibrationSolution(
        jones=jones,
        tiles=unnamed_tiles(n_ant),
        freqs_hz=np.full(n_chan, np.nan),
        times_gps=[(float(start), float(end))] * n_int,
        cal_obsid=None,
        software=None,
    )
