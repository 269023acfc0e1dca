"""Export filters, checked against a dataset's columns (applied by ``dataplane.masks``).

User-chosen column names and values never reach SQL: a filter selects rows of a batch read
by row key, with Arrow's kernels. A number compares numerically: a cell counts as the number
it holds only if it is plain decimal notation (spaces around allowed), so ``age gt 30``
never compares text, and a cell such as ``n/a`` matches no numeric comparison except ``ne``.
Text compares as SQLite's binary collation does, byte by byte of its UTF-8.
"""

from dataclasses import dataclass
from typing import Any

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


def is_number(value: object) -> bool:
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
            bad = [v for v in f.value if not (isinstance(v, str) or is_number(v))]
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
        elif not (isinstance(f.value, str) or is_number(f.value)):
            raise FilterProblem(
                f"{where}: operator {f.op!r} needs a string or a number, not {f.value!r}",
                field=f"{where}.value",
            )
