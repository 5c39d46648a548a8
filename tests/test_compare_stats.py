"""The comparison statistics against values computed here, independently, from two known Jones arrays."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.compare.stats import compare


def test_amplitude_ratio_and_phase_difference_per_tile_and_pol():
    rng = np.random.default_rng(7)
    n_tiles, n_chan = 3, 40
    freqs = np.linspace(100e6, 130e6, n_chan)
    amp_a = 1.0 + 0.2 * rng.random((n_tiles, n_chan, 4))
    amp_b = 0.5 + 0.1 * rng.random((n_tiles, n_chan, 4))
    delay = np.array([1e-9, -2e-9, 0.5e-9])[:, None, None]  # a phase slope per tile
    phase_b = rng.uniform(-np.pi, np.pi, (n_tiles, n_chan, 4))
    phase_a = phase_b + 2 * np.pi * freqs[None, :, None] * delay
    ja, jb = amp_a * np.exp(1j * phase_a), amp_b * np.exp(1j * phase_b)
    ja[1, 5, :] = np.nan  # a flagged channel of tile 1 in a
    jb[2] = np.nan  # tile 2 missing from b
    got = compare(ja, jb, ["T1", "T2", "T3"])
    assert [g["tile"] for g in got] == ["T1", "T2", "T3"]
    for t in range(2):
        for pol, k in (("XX", 0), ("YY", 3)):
            keep = np.ones(n_chan, bool)
            if t == 1:
                keep[5] = False
            ratio = amp_a[t, keep, k] / amp_b[t, keep, k]
            dphi = (2 * np.pi * freqs[keep] * delay[t, 0, 0] + np.pi) % (2 * np.pi) - np.pi
            s = got[t][pol]
            assert s["channels"] == keep.sum()
            assert s["amp_ratio_median"] == pytest.approx(np.median(ratio), rel=1e-12)
            assert s["amp_ratio_rms"] == pytest.approx(np.sqrt(np.mean(ratio ** 2)), rel=1e-12)
            assert s["phase_diff_median"] == pytest.approx(np.median(dphi), abs=1e-9)
            assert s["phase_diff_rms"] == pytest.approx(np.sqrt(np.mean(dphi ** 2)), abs=1e-9)
    assert got[2]["XX"] == {"channels": 0, "amp_ratio_median": None, "amp_ratio_rms": None,
                            "phase_diff_median": None, "phase_diff_rms": None}


def test_a_solution_compared_with_itself_is_ratio_one_phase_zero():
    j = np.exp(1j * np.linspace(-3, 3, 24))[None, :, None] * np.ones((1, 24, 4)) * 2.5
    s = compare(j, j, ["T"])[0]["YY"]
    assert s["amp_ratio_median"] == pytest.approx(1.0) and s["phase_diff_rms"] == pytest.approx(0.0, abs=1e-12)


def test_shapes_must_match():
    with pytest.raises(ValueError):
        compare(np.ones((2, 3, 4)), np.ones((2, 4, 4)), ["a", "b"])
