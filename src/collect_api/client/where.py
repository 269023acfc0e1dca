"""``--where COLUMN OP VALUE``: an export filter as a person types it, into the API's form.

A value that reads as a number (plain decimal notation, as the service's own test) is sent
as a JSON number, so that it compares numerically; a value in quotes is always text.
"""

import re
from typing import Any

# The spellings, longest first where one begins another.
OPERATORS = {
    "==": "eq",
    "!=": "ne",
    "<=": "le",
    ">=": "ge",
    "=": "eq",
    "<": "lt",
    ">": "gt",
    "~": "contains",
}
SYNTAX = "COLUMN OP VALUE, with OP one of = != < <= > >= ~ (contains)"

_EXPRESSION = re.compile(
    r"\s*(?P<column>.+?)\s*(?P<op>"
    + "|".join(map(re.escape, OPERATORS))
    + r")\s*(?P<value>.*?)\s*",
    re.DOTALL,
)
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_INTEGER = re.compile(r"[-+]?\d+")


class BadExpression(ValueError):
    pass


def parse_where(expression: str) -> dict[str, Any]:
    """``"age >= 30"`` → ``{"column": "age", "op": "ge", "value": 30}``."""
    match = _EXPRESSION.fullmatch(expression)
    if match is None:
        raise BadExpression(f"{expression!r} is not a filter: write {SYNTAX}")
    op = OPERATORS[match["op"]]
    return {"column": match["column"], "op": op, "value": _value(match["value"], op)}


def _value(text: str, op: str) -> str | int | float:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if op == "contains" or not _NUMBER.fullmatch(text):
        return text
    return int(text) if _INTEGER.fullmatch(text) else float(text)
