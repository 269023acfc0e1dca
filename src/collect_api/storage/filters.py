"""Export filters compiled to SQL over a dataset's internal columns.

User-chosen column names and values never reach SQL text: a column becomes ``c<index>``
and every value a bound parameter. A number compares numerically: the cell is read with
``collect_number()`` (``db.collect_number``, registered on every connection), which is NULL
for text that is not a plain decimal number, so ``age gt 30`` never compares text, and a
cell such as ``n/a`` matches no numeric comparison except ``ne``.
"""

from dataclasses import dataclass
from typing import Any

OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "contains", "in")
_SQL = {"eq": "=", "ne": "IS NOT", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


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


def compile_filters(filters: list[Filter], columns: list[str]) -> tuple[str, list[Any]]:
    """``(sql, params)``: the filters ANDed together, ``"1"`` when there are none."""
    clauses: list[str] = []
    params: list[Any] = []
    for f in filters:
        cell = f"c{columns.index(f.column)}"
        if f.op == "contains":
            clauses.append(f"instr({cell}, ?) > 0")
            params.append(f.value)
        elif f.op == "in":
            texts = [v for v in f.value if isinstance(v, str)]
            numbers = [float(v) for v in f.value if not isinstance(v, str)]
            parts = []
            if texts:
                parts.append(f"{cell} IN ({', '.join('?' * len(texts))})")
                params.extend(texts)
            if numbers:
                parts.append(f"collect_number({cell}) IN ({', '.join('?' * len(numbers))})")
                params.extend(numbers)
            clauses.append("(" + " OR ".join(parts) + ")")
        elif _is_number(f.value):
            clauses.append(f"collect_number({cell}) {_SQL[f.op]} ?")
            params.append(float(f.value))
        else:
            clauses.append(f"{cell} {_SQL[f.op]} ?")
            params.append(f.value)
    return (" AND ".join(clauses) or "1"), params
