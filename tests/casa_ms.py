"""Run by the CASA venv's python, not by pytest: make a small measurement set, read its flags back.

``build SPEC.json MS``: casatools' simulator writes an MS of the spec's antennas (autocorrelations
included), channels and integrations. ``flags OUT.json MS...``: per baseline of each MS, the FLAG
column (or FLAG_ROW) read straight from the main table, for tests/test_casa_flags.py.
"""

import json
import os
import sys


def build(spec_path, ms):
    """Simulate the spec's observation into a new measurement set at ``ms``."""
    from casatools import measures, simulator

    with open(spec_path) as f:
        spec = json.load(f)
    names = spec["names"]
    me, sm = measures(), simulator()
    centre = me.position("WGS84", "%.10fdeg" % spec["longitude_deg"], "%.10fdeg" % spec["latitude_deg"],
                         "%.3fm" % spec["height_m"])
    sm.open(ms)
    try:
        sm.setconfig(telescopename="MWA", x=spec["east_m"], y=spec["north_m"], z=spec["up_m"],
                     dishdiameter=[4.0] * len(names), mount=["ALT-AZ"] * len(names), antname=names,
                     padname=names, coordsystem="local", referencelocation=centre)
        sm.setspwindow(spwname="coarse", freq="%.1fHz" % spec["freq_hz"], deltafreq="%.1fHz" % spec["chan_hz"],
                       freqresolution="%.1fHz" % spec["chan_hz"], nchannels=spec["channels"],
                       stokes="XX XY YX YY")
        sm.setfeed(mode="perfect X Y")
        sm.setfield(sourcename="target", sourcedirection=me.direction(
            "J2000", "%.8fdeg" % spec["ra_deg"], "%.8fdeg" % spec["dec_deg"]))
        sm.setlimits(shadowlimit=0.0, elevationlimit="0deg")
        sm.setauto(autocorrwt=1.0)
        sm.settimes(integrationtime="%gs" % spec["integration_s"], usehourangle=False,
                    referencetime=me.epoch("UTC", spec["start_utc"]))
        sm.observe("target", "coarse", starttime="0s",
                   stoptime="%gs" % (spec["integrations"] * spec["integration_s"]))
    finally:
        sm.close()


def flags(out_path, *mss):
    """For each MS: antenna names and, per baseline, [ant1, ant2, rows, flagged values, values]."""
    import numpy as np
    from casatools import table

    tb = table()
    result = {}
    for ms in mss:
        tb.open(os.path.join(ms, "ANTENNA"))
        names = [str(n) for n in tb.getcol("NAME")]
        tb.close()
        tb.open(ms)
        a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        flag = tb.getcol("FLAG") | tb.getcol("FLAG_ROW")[np.newaxis, np.newaxis, :]  # (pol, chan, row)
        tb.close()
        baselines = []
        for i, j in sorted(set(zip(a1.tolist(), a2.tolist()))):
            rows = (a1 == i) & (a2 == j)
            baselines.append([i, j, int(rows.sum()), int(flag[:, :, rows].sum()), int(flag[:, :, rows].size)])
        result[ms] = {"names": names, "baselines": baselines}
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    {"build": build, "flags": flags}[sys.argv[1]](*sys.argv[2:])
