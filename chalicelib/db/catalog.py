"""SQL on PostgreSQL's catalog: which tables and columns a database has (for ``chalicelib.schema_check``)."""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib import db


def table_columns(tables: Iterable[str]) -> dict[str, dict[str, str]]:
    """{table: {column: type}} of the named tables the search path finds; types as ``format_type`` spells them."""
    rows = db.query(
        "SELECT c.relname AS table_name, a.attname AS column_name,"
        " format_type(a.atttypid, a.atttypmod) AS column_type"
        " FROM pg_class c"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND pg_table_is_visible(c.oid)"
        " AND c.relname = ANY(CAST(:names AS text[]))"
        " ORDER BY c.relname, a.attnum",
        {"names": sorted(set(tables))},
    )
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r["table_name"], {})[r["column_name"]] = r["column_type"]
    return out


def whoami() -> dict[str, str]:
    """The database, role and search-path schemas the connection uses."""
    row = db.query("SELECT current_database() AS database, current_user AS role,"
                   " array_to_string(current_schemas(false), ',') AS schemas")[0]
    return {k: str(v) for k, v in row.items()}
