"""Benchmark databases: an embedded PostgreSQL per data directory, seeded once with demo data."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mwa-calib-bench")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MWACalibBench")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")


def start_database(datadir: Path, name: str = "bench"):
    """pgserver in datadir; the CALIB_DB_* variables then point the service at database ``name``."""
    warnings.filterwarnings("ignore", module="platformdirs")
    import pg8000.native
    import pgserver

    datadir.parent.mkdir(parents=True, exist_ok=True)
    srv = pgserver.get_server(datadir, cleanup_mode="stop")
    host = srv.get_uri().split("host=", 1)[1].split("&", 1)[0]
    sock = str(Path(host) / ".s.PGSQL.5432")
    conn = pg8000.native.Connection(user="postgres", database="postgres", unix_sock=sock)
    if not conn.run("SELECT 1 FROM pg_database WHERE datname = :n", n=name):
        conn.run(f"CREATE DATABASE {name}")
    conn.close()
    os.environ.update({"CALIB_DB_UNIX_SOCK": sock, "CALIB_DB_NAME": name, "CALIB_DB_USER": "postgres"})
    os.environ.pop("CALIB_DB_HOST", None)
    from chalicelib import db

    db.close()
    return srv


def database_dir(root: Path, days: int, calibrators_per_day: tuple[int, int] = (4, 6)) -> Path:
    """Where the benchmark database of that size and schedule density is kept (and reused)."""
    low, high = calibrators_per_day
    return root / (str(days) if (low, high) == (4, 6) else f"{days}-cal{low}-{high}")


def seed(days: int, calibrators_per_day: tuple[int, int] = (4, 6)) -> dict:
    """Migrate and seed ``days`` of demo data unless the database already holds fits."""
    from chalicelib import db, migrate
    from devstack import demo

    migrate.apply()
    have = db.query("SELECT min(obsid) AS lo, max(obsid) AS hi, count(*) AS n FROM calibration_fits")[0]
    if have["n"]:
        span = (have["hi"] - have["lo"]) / 86400
        print(f"[bench] reusing the database: {have['n']} fits over {span:.0f} days", flush=True)
        return have
    t0 = time.perf_counter()
    data = demo.generate(days=days, calibrators_per_day=tuple(calibrators_per_day))
    print(f"[bench] generated {len(data.observations)} observations, {len(data.fits)} fits in "
          f"{time.perf_counter() - t0:.1f} s; seeding ...", flush=True)
    counts = demo.seed_database(data, progress=True)
    db.execute("ANALYZE")
    print(f"[bench] seeded in {time.perf_counter() - t0:.1f} s: {counts}", flush=True)
    return counts


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]
