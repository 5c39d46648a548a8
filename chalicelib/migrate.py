"""Apply the SQL migrations in ``chalicelib/migrations`` in order, each once.

Run as ``python -m chalicelib.migrate``; the local stack and the tests call ``apply()``.
"""

from __future__ import annotations

from pathlib import Path

from chalicelib import db

MIGRATIONS = Path(__file__).parent / "migrations"


def pending(applied: set[str]) -> list[Path]:
    """Migration files not applied yet, in name order."""
    return [p for p in sorted(MIGRATIONS.glob("*.sql")) if p.name not in applied]


def apply() -> list[str]:
    """Apply every pending migration in its own transaction; returns the names applied."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
               " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
    applied = {r["name"] for r in db.query("SELECT name FROM schema_migrations")}
    done = []
    for path in pending(applied):
        with db.transaction() as tx:
            tx.run("SELECT pg_advisory_xact_lock(727001)")
            if tx.run("SELECT 1 FROM schema_migrations WHERE name = :n", {"n": path.name}):
                continue  # another process applied it meanwhile
            for statement in _statements(path.read_text()):
                tx.run(statement)
            tx.run("INSERT INTO schema_migrations (name) VALUES (:n)", {"n": path.name})
        done.append(path.name)
    return done


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (our migrations keep ';' out of literals and bodies)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


if __name__ == "__main__":
    names = apply()
    print("applied: " + (", ".join(names) if names else "nothing (up to date)"))
