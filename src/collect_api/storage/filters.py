"""Export filters, checked against a dataset's columns and applied to Arrow batches.

User-chosen column names and values never reach SQL: a filter selects rows of a batch read
by row key, with Arrow's kernels. A number compares numerically: a cell counts as the number
it holds only if it is plain decimal notation (spaces around allowed), so ``age gt 30``
never compares text, and a cell such as ``n/a`` matches no numeric comparison except ``ne``.
Text compares as SQLite's binary collation does, byte by byte of its UTF-8.
"""

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "contains", "in")


class FilterProblem(ValueError):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: Any


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_filters(filters: list[Filter], columns: list[str]) -> None:
    """Raise FilterProblem naming the first unknown column or operator or ill-typed value."""
    for i, f in enumerate(filters):
        where = f"filters[{i}]"
        if f.column not in columns:
            raise FilterProblem(
                f"{where}: the dataset has no column {f.column!r}; its columns are {columns}",
                field=f"{where}.column",
            )
        if f.op not in OPERATORS:
            raise FilterProblem(
                f"{where}: unknown operator {f.op!r}; use one of {', '.join(OPERATORS)}",
                field=f"{where}.op",
            )
        if f.op == "in":
            if not isinstance(f.value, list) or not f.value:
                raise FilterProblem(
                    f"{where}: operator 'in' needs a non-empty list of values",
                    field=f"{where}.value",
                )
            bad = [v for v in f.value if not (isinstance(v, str) or _is_number(v))]
            if bad:
                raise FilterProblem(
                    f"{where}: the values of 'in' must be strings or numbers, not {bad[0]!r}",
                    field=f"{where}.value",
                )
        elif f.op == "contains":
            if not isinstance(f.value, str):
                raise FilterProblem(
                    f"{where}: operator 'contains' needs a string value, not {f.value!r}",
                    field=f"{where}.value",
                )
        elif not (isinstance(f.value, str) or _is_number(f.value)):
            raise FilterProblem(
                f"{where}: operator {f.op!r} needs a string or a number, not {f.value!r}",
                field=f"{where}.value",
            )


# A cell holds a number when it is plain decimal notation, spaces around allowed.
_NUMBER_PATTERN = r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


def _numbers(cells: pa.Array) -> pa.Array:
    """The number each cell holds, or null."""
    plain = pc.match_substring_regex(cells, _NUMBER_PATTERN)
    trimmed = pc.utf8_trim_whitespace(pc.if_else(plain, cells, pa.scalar(None, pa.string())))
    return pc.cast(trimmed, pa.float64())


def arrow_mask(table: pa.Table, filters: list[Filter], columns: list[str]) -> pa.Array:
    """The rows of ``table`` (columns ``c<index>``) that every filter keeps."""
    keep: pa.Array | None = None
    for f in filters:
        cells = table.column(f"c{columns.index(f.column)}").combine_chunks()
        cells = pc.fill_null(cells, "")
        if f.op == "contains":
            this = pc.match_substring(cells, f.value)
        elif f.op == "in":
            texts = [v for v in f.value if isinstance(v, str)]
            numbers = [float(v) for v in f.value if not isinstance(v, str)]
            this = pc.is_in(cells, pa.array(texts, pa.string()))
            if numbers:
                found = pc.is_in(_numbers(cells), pa.array(numbers, pa.float64()))
                this = pc.or_(this, pc.fill_null(found, False))
        elif _is_number(f.value):
            compared = _compare(f.op, _numbers(cells), pa.scalar(float(f.value), pa.float64()))
            # ``ne`` holds for a cell that holds no number, as SQL's IS NOT does.
            this = pc.fill_null(compared, f.op == "ne")
        else:
            this = _compare(f.op, cells, pa.scalar(f.value, pa.string()))
        keep = this if keep is None else pc.and_(keep, this)
    if keep is None:
        return pc.is_valid(table.column(0))
    return keep


def _compare(op: str, cells: pa.Array, value: pa.Scalar) -> pa.Array:
    kernel = {
        "eq": pc.equal,
        "ne": pc.not_equal,
        "lt": pc.less,
        "le": pc.less_equal,
        "gt": pc.greater,
        "ge": pc.greater_equal,
    }[op]
    return kernel(cells, value)
