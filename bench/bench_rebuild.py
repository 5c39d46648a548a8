"""Time the Jones rebuild (``solutions.rebuild.rebuild_jones``) against its numpy floor, in one run.

A 256-tile, 24-coarse-channel fit at 40 kHz (768 fine channels), and the same at 10 kHz, rebuilt
from arrays already in memory: no database, no S3, no encoding. The floor is the same formula
(domain.md: J = e^{i(intercept - 2 pi nu delay / c)} / gain, XX and YY, XY = YX = 0) written as
plainly as numpy allows, on the same arrays; the ratio is what the rebuild's NaN handling, gain
lines and layout add. A per-value Python loop would be ~1000x.

    .venv/bin/python bench/bench_rebuild.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.instrument import COARSE_CHAN_HZ, SPEED_OF_LIGHT  # noqa: E402
from chalicelib.solutions.rebuild import SolutionArrays, fine_channel_freqs, rebuild_jones  # noqa: E402

COARSE = list(range(109, 133))


def arrays(n_tiles: int, n_coarse: int, rng: np.random.Generator) -> SolutionArrays:
    """Realistic magnitudes: delays of up to a few hundred metres, amplitudes 1..2, no gain lines."""
    kw = {}
    for p in "xy":
        kw[f"{p}_delay_m"] = rng.uniform(-300, 300, n_tiles)
        kw[f"{p}_intercept"] = rng.uniform(-np.pi, np.pi, n_tiles)
        kw[f"{p}_gains"] = rng.uniform(1.0, 2.0, (n_tiles, n_coarse))
        kw[f"{p}_gains_pol0"] = np.zeros((n_tiles, n_coarse))
        kw[f"{p}_gains_pol1"] = np.zeros((n_tiles, n_coarse))
    return SolutionArrays(**kw)


def floor(rows: SolutionArrays, fine_hz: float) -> np.ndarray:
    """The formula alone, broadcast over (tile, channel)."""
    n_fine = int(COARSE_CHAN_HZ // fine_hz)
    nu = fine_channel_freqs(COARSE, fine_hz)
    out = np.zeros((rows.n_tiles, nu.size, 4), dtype=np.complex128)
    for term, delay, icpt, gains in ((0, rows.x_delay_m, rows.x_intercept, rows.x_gains),
                                     (3, rows.y_delay_m, rows.y_intercept, rows.y_gains)):
        phi = icpt[:, None] - 2 * np.pi * nu[None, :] * delay[:, None] / SPEED_OF_LIGHT
        out[..., term] = np.exp(1j * phi) / np.repeat(gains, n_fine, axis=1)
    return out


def timed_ms(fn, repeat: int) -> float:
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    print(f"{'case':<34}{'rebuild ms':>12}{'floor ms':>10}{'ratio':>8}")
    for n_tiles, fine_hz in ((128, 40e3), (256, 40e3), (256, 10e3)):
        rows = arrays(n_tiles, len(COARSE), rng)
        got, want = rebuild_jones(rows, COARSE, fine_hz), floor(rows, fine_hz)
        assert np.allclose(got, want, rtol=1e-12, atol=1e-12), "rebuild and floor disagree"
        r = timed_ms(lambda: rebuild_jones(rows, COARSE, fine_hz), args.repeat)
        f = timed_ms(lambda: floor(rows, fine_hz), args.repeat)
        case = f"{n_tiles} tiles x {got.shape[1]} ch ({fine_hz / 1e3:.0f} kHz)"
        print(f"{case:<34}{r:>12.1f}{f:>10.1f}{r / f:>8.2f}")


if __name__ == "__main__":
    main()
