"""Load, render and run the feature SQL files of ``sql/``.

A file may be templated (Jinja2, strict undefined) **only** with validated integers or tuples of integers
— the indicator periods that become column names.  Everything else is a DuckDB named parameter
(``$name``) bound at execution, so no value a user typed is ever formatted into SQL text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pyarrow as pa
import pyarrow.compute as pc

from features.errors import FeatureBuildError

TemplateValue = int | tuple[int, ...]

_PARAM_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT_RE = re.compile(r"--[^\n]*")
_MAX_TEMPLATE_INT = 100_000


def sql_dir() -> Path:
    """``sql/`` of the source checkout, else the copy shipped inside the wheel (``quantlake/_sql``)."""
    here = Path(__file__).resolve().parent.parent / "sql"
    if here.is_dir():
        return here
    return Path(str(resources.files("quantlake") / "_sql"))


@functools.lru_cache(maxsize=32)
def load_sql(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*(/[a-z][a-z0-9_]*)?", name):
        raise FeatureBuildError(f"invalid SQL file name {name!r}")
    path = sql_dir() / f"{name}.sql"
    if not path.is_file():
        raise FeatureBuildError(f"no SQL file {name}.sql in {sql_dir()}")
    return path.read_text(encoding="utf-8")


def _check_template_value(key: str, value: Any) -> TemplateValue:
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _MAX_TEMPLATE_INT:
            raise FeatureBuildError(f"SQL template value {key}={value!r} is not a validated integer period")
    return value


def render(name: str, template: Mapping[str, Any] | None = None) -> str:
    """The SQL text of ``sql/<name>.sql`` with its integer template values filled in."""
    ctx = {k: _check_template_value(k, v) for k, v in (template or {}).items()}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    try:
        return env.from_string(load_sql(name)).render(**ctx)
    except jinja2.UndefinedError as exc:
        raise FeatureBuildError(f"sql/{name}.sql: {exc}") from None


def parameters_of(sql: str) -> set[str]:
    """Named ``$parameters`` a statement uses (comments ignored)."""
    return set(_PARAM_RE.findall(_COMMENT_RE.sub("", sql)))


def run(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: Mapping[str, Any] | None = None,
    template: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Execute ``sql/<name>.sql`` and return the result as an Arrow table (NaN/±inf turned into NULL).

    ``params`` must bind exactly the ``$names`` the file uses (a missing or unused one is a bug here)."""
    sql = render(name, template)
    wanted = parameters_of(sql)
    given = dict(params or {})
    if wanted != set(given):
        raise FeatureBuildError(
            f"sql/{name}.sql parameters: missing {sorted(wanted - set(given))}, unused {sorted(set(given) - wanted)}"
        )
    try:
        res = con.execute(sql, given).arrow()
    except duckdb.Error as exc:
        raise FeatureBuildError(f"sql/{name}.sql failed: {str(exc).splitlines()[0]}") from exc
    table = res.read_all() if isinstance(res, pa.RecordBatchReader) else res
    return finite_or_null(table)


def finite_or_null(table: pa.Table) -> pa.Table:
    """Every float NaN or ±inf becomes NULL: a feature is NULL where it is undefined."""
    cols = []
    for col in table.columns:
        if pa.types.is_floating(col.type):
            col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, type=col.type))
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=table.schema)
