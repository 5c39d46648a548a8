"""``python -m chalicelib.schema_check``: does a database have the tables and columns the service needs?

Run it against the database named by the usual ``CALIB_DB_*`` settings (e.g. a copy of the MWA
database) before applying the migrations. What the service needs is read from the migrations
themselves (every ``CREATE TABLE`` and ``ALTER TABLE ... ADD COLUMN`` of
``chalicelib/migrations/*.sql``), so the list cannot drift from the schema the code is tested on.

Each table present gets a line, ``ok`` when it has every needed column with the needed type, else
``partial`` followed by a line per column that is ``add`` (absent, and a migration's ``ADD COLUMN``
adds it), ``MISSING`` (absent and nothing adds it: ``CREATE TABLE IF NOT EXISTS`` skips a table
that exists) or ``TYPE`` (present with another type). Each of our own tables that is absent is
``create`` (the migrations create it). An absent MWA table is ``MISSING``: the migrations would
create an empty one, which is not the MWA database. Columns the database has beyond these are fine.
Exit status: 0 when nothing is MISSING or TYPE, 1 when something is, 2 when the database cannot be reached.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"

# The MWA database's tables the service reads (README "Schema"); every other table is ours.
MWA_TABLES = ("mwa_setting", "schedule_metadata", "rf_stream", "calibration_fits", "calibration_solutions",
              "calibration_request")

# Type spellings in our SQL -> PostgreSQL's own (format_type) spelling.
_TYPE_ALIASES = {
    "int": "integer", "int4": "integer", "serial": "integer", "serial4": "integer",
    "int8": "bigint", "bigserial": "bigint", "serial8": "bigint", "int2": "smallint", "smallserial": "smallint",
    "float8": "double precision", "float": "double precision", "float4": "real", "bool": "boolean",
    "timestamptz": "timestamp with time zone", "timestamp": "timestamp without time zone",
    "timetz": "time with time zone", "time": "time without time zone", "varchar": "character varying",
    "char": "character", "decimal": "numeric",
}
_CONSTRAINT_WORDS = r"(?:NOT|NULL|DEFAULT|PRIMARY|REFERENCES|UNIQUE|CHECK|CONSTRAINT|GENERATED|COLLATE)"
_TABLE_CONSTRAINT = re.compile(r"^(?:PRIMARY\s+KEY|FOREIGN\s+KEY|UNIQUE|CHECK|CONSTRAINT|EXCLUDE)\b", re.I)
_CREATE_TABLE = re.compile(r"^CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?([\w.\"]+)\s*\((.*)\)\s*$",
                           re.I | re.S)
_ALTER_TABLE = re.compile(r"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.\"]+)\s+(.*)$", re.I | re.S)
_ADD_COLUMN = re.compile(r"^ADD\s+(?:COLUMN\s+)?(IF\s+NOT\s+EXISTS\s+)?(.*)$", re.I | re.S)


# ---------------------------------------------------------------------------------------------
# What the migrations declare


@dataclass(frozen=True)
class Column:
    """A column the service needs: its type and the migration that declares it."""

    name: str
    type: str  # PostgreSQL's spelling, e.g. "double precision[]"
    migration: str
    added: bool = False  # declared by ALTER TABLE ... ADD COLUMN (so added to an existing table)


@dataclass
class Table:
    """A table the service needs and the columns it needs in it."""

    name: str
    migration: str  # the one whose CREATE TABLE declares it
    columns: dict[str, Column] = field(default_factory=dict)

    @property
    def mwa(self) -> bool:
        return self.name in MWA_TABLES


def statements(sql: str) -> list[str]:
    """The statements of a migration, comments removed (our migrations keep ';' and '--' out of literals)."""
    text = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [" ".join(s.split()) for s in text.split(";") if s.strip()]


def migration_statements(folder: Path = MIGRATIONS) -> list[tuple[str, str]]:
    """(migration file name, statement) of every migration, in the order they are applied."""
    return [(path.name, s) for path in sorted(folder.glob("*.sql")) for s in statements(path.read_text())]


def split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def canonical_type(spelling: str) -> str:
    """A type as our SQL spells it, in PostgreSQL's spelling (``float8[]`` -> ``double precision[]``)."""
    text = " ".join(spelling.lower().split())
    dims = ""
    while text.endswith("[]"):
        text, dims = text[:-2].rstrip(), dims + "[]"
    base, _, mod = text.partition("(")
    base = _TYPE_ALIASES.get(base.strip(), base.strip())
    return base + (f"({mod.replace(' ', '')}" if mod else "") + dims


def column_definition(text: str) -> tuple[str, str]:
    """(name, type) of a column definition such as ``fitid bigint NOT NULL``."""
    name, _, rest = text.partition(" ")
    spelled = re.split(rf"\s+(?={_CONSTRAINT_WORDS}\b)", rest.strip(), maxsplit=1, flags=re.I)[0]
    return name.strip('"').lower(), canonical_type(spelled)


def required_schema(folder: Path = MIGRATIONS) -> dict[str, Table]:
    """Every table and column the migrations declare, by table name."""
    tables: dict[str, Table] = {}
    for migration, statement in migration_statements(folder):
        if m := _CREATE_TABLE.match(statement):
            name = _unqualified(m.group(2))
            table = tables.setdefault(name, Table(name=name, migration=migration))
            for item in split_top_level(m.group(3)):
                if not _TABLE_CONSTRAINT.match(item):
                    col, typ = column_definition(item)
                    table.columns.setdefault(col, Column(col, typ, migration))
        elif m := _ALTER_TABLE.match(statement):
            name = _unqualified(m.group(1))
            for action in split_top_level(m.group(2)):
                add = _ADD_COLUMN.match(action)
                if add and not _TABLE_CONSTRAINT.match(add.group(2)) and name in tables:
                    col, typ = column_definition(add.group(2))
                    known = tables[name].columns.get(col)
                    if known is None or not known.added:
                        # also a column the CREATE TABLE declared: an existing table (the MWA's own) gets it added
                        tables[name].columns[col] = Column(col, known.type if known else typ, migration, added=True)
    return tables


def _unqualified(name: str) -> str:
    return name.split(".")[-1].strip('"').lower()


# ---------------------------------------------------------------------------------------------
# The comparison with a database

PROBLEMS = ("MISSING", "TYPE")


@dataclass(frozen=True)
class Finding:
    """One line of the report: a table or column, its state, and why."""

    status: str  # ok, partial (a table: see its columns), add, create, MISSING, TYPE
    table: str
    column: str | None
    detail: str

    @property
    def problem(self) -> bool:
        return self.status in PROBLEMS


def compare(required: Mapping[str, Table], present: Mapping[str, Mapping[str, str]]) -> list[Finding]:
    """The findings for every needed table (MWA tables first), comparing with ``{table: {column: type}}``."""
    out: list[Finding] = []
    for table in sorted(required.values(), key=lambda t: (not t.mwa, list(required).index(t.name))):
        have = present.get(table.name)
        if have is None:
            if table.mwa:
                out.append(Finding("MISSING", table.name, None, "the MWA table is absent (the migrations would "
                                   "create an empty one: is this the MWA database?)"))
            else:
                out.append(Finding("create", table.name, None,
                                   f"{len(table.columns)} columns, created by {table.migration}"))
            continue
        fine, columns = 0, []
        for col in table.columns.values():
            if col.name not in have:
                if col.added:
                    columns.append(Finding("add", table.name, col.name, f"{col.type}, added by {col.migration}"))
                else:
                    columns.append(Finding("MISSING", table.name, col.name,
                                           f"{col.type} needed; {col.migration} declares it in CREATE TABLE IF NOT "
                                           "EXISTS, which skips an existing table, and no migration adds it"))
            elif have[col.name] != col.type:
                columns.append(Finding("TYPE", table.name, col.name, f"{have[col.name]} here, {col.type} needed"))
            else:
                fine += 1
        extra = len(set(have) - set(table.columns))
        more = f"; {extra} other column{'s' if extra != 1 else ''} not used" if extra else ""
        out.append(Finding("ok" if fine == len(table.columns) else "partial", table.name, None,
                           f"{fine} of {len(table.columns)} columns as needed{more}"))
        out += columns
    return out


def report(findings: Iterable[Finding], required: Mapping[str, Table], who: Mapping[str, str]) -> str:
    """The text the command prints."""
    findings = list(findings)
    files = sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    n_cols = sum(len(t.columns) for t in required.values())
    lines = [f"schema check of database {who.get('database')!r} as role {who.get('role')!r} "
             f"(schemas on the search path: {who.get('schemas') or '-'})",
             f"needed: {len(required)} tables, {n_cols} columns, from the migrations {', '.join(files)}"]
    for heading, mwa in (("MWA tables (read by the service; the migrations only add to them)", True),
                         ("our tables", False)):
        lines += ["", heading]
        for f in findings:
            if (f.table in MWA_TABLES) == mwa:
                if f.column:
                    lines.append(f"    {f.status:<8} {f.table}.{f.column}: {f.detail}")
                else:
                    lines.append(f"  {f.status:<8} {f.table}: {f.detail}")
    problems = [f for f in findings if f.problem]
    creates = sum(f.status == "create" for f in findings)
    adds = sum(f.status == "add" for f in findings)
    verdict = (f"{len(problems)} problem{'s' if len(problems) != 1 else ''} "
               f"({sum(f.status == 'MISSING' for f in problems)} missing, "
               f"{sum(f.status == 'TYPE' for f in problems)} of another type)" if problems else "no problems")
    lines += ["", f"result: {verdict}; the migrations would create {creates} table{'s' if creates != 1 else ''} "
                  f"and add {adds} column{'s' if adds != 1 else ''}"]
    return "\n".join(lines)


def check() -> tuple[list[Finding], str]:
    """Compare the configured database with the migrations: the findings and the report."""
    from chalicelib.db import catalog

    required = required_schema()
    findings = compare(required, catalog.table_columns(required))
    return findings, report(findings, required, catalog.whoami())


def main(argv: list[str] | None = None) -> int:
    """The command: print the report; 0 all there, 1 something needed is missing or different, 2 no database."""
    import argparse

    from chalicelib.errors import DatabaseUnavailable

    argparse.ArgumentParser(prog="python -m chalicelib.schema_check", description=__doc__.split("\n")[0],
                            epilog="The database is the one CALIB_DB_* names (README, Configuration).").parse_args(argv)
    try:
        findings, text = check()
    except DatabaseUnavailable as exc:
        print(f"schema check: {exc.message}", file=sys.stderr)
        return 2
    print(text)
    return 1 if any(f.problem for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
