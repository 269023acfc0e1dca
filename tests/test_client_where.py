"""``--where COLUMN OP VALUE`` into the API's filters."""

import pytest

from collect_api.client.where import BadExpression, parse_where


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("age > 30", ("age", "gt", 30)),
        ("age>=30", ("age", "ge", 30)),
        ("age<=30.5", ("age", "le", 30.5)),
        ("score < -1e2", ("score", "lt", -100.0)),
        ("country = France", ("country", "eq", "France")),
        ("country == 日本", ("country", "eq", "日本")),
        ("country != France", ("country", "ne", "France")),
        ("comment ~ a, b", ("comment", "contains", "a, b")),
        ("comment ~ 42", ("comment", "contains", "42")),  # contains compares text
        ("zip = '01234'", ("zip", "eq", "01234")),  # quoted: text, not a number
        ('zip = "30"', ("zip", "eq", "30")),
        ("first name = Ada Lovelace", ("first name", "eq", "Ada Lovelace")),
        ("note = a=b", ("note", "eq", "a=b")),
        ("comment = ", ("comment", "eq", "")),
        ("age = 1_000", ("age", "eq", "1_000")),  # not plain decimal notation: text
        ("age = nan", ("age", "eq", "nan")),
    ],
)
def test_parse_where(expression: str, expected: tuple[str, str, object]) -> None:
    column, op, value = expected
    parsed = parse_where(expression)
    assert parsed == {"column": column, "op": op, "value": value}
    assert type(parsed["value"]) is type(value)


@pytest.mark.parametrize("expression", ["age 30", "", "= 30", "   "])
def test_parse_where_refuses_what_is_not_a_filter(expression: str) -> None:
    with pytest.raises(BadExpression, match="COLUMN OP VALUE"):
        parse_where(expression)
