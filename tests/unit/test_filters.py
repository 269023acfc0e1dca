"""Export filters: checked against the columns, then applied to Arrow columns of text."""

import pyarrow as pa
import pytest

from collect_api.storage.dataplane.masks import arrow_mask
from collect_api.storage.filters import Filter, FilterProblem, check_filters

COLUMNS = ["name", "age"]
TABLE = pa.table(
    {
        "c0": ["ann", "bob", "cy", "", None],
        "c1": ["31", " 4.5 ", "n/a", "30", None],
    }
)


def kept(*filters: Filter) -> list[int]:
    mask = arrow_mask(TABLE, list(filters), COLUMNS)
    return [i for i, keep in enumerate(mask.to_pylist()) if keep]


@pytest.mark.parametrize(
    ("f", "field"),
    [
        (Filter("years", "eq", 1), "filters[0].column"),
        (Filter("age", "like", 1), "filters[0].op"),
        (Filter("age", "in", []), "filters[0].value"),
        (Filter("age", "in", [1, None]), "filters[0].value"),
        (Filter("age", "contains", 3), "filters[0].value"),
        (Filter("age", "gt", True), "filters[0].value"),
        (Filter("age", "gt", [3]), "filters[0].value"),
    ],
)
def test_a_bad_filter_names_its_field(f: Filter, field: str) -> None:
    with pytest.raises(FilterProblem) as raised:
        check_filters([f], COLUMNS)
    assert raised.value.field == field


def test_numbers_compare_as_numbers_and_text_that_is_none_matches_only_ne() -> None:
    assert kept(Filter("age", "gt", 5)) == [0, 3]
    assert kept(Filter("age", "le", 4.5)) == [1]
    assert kept(Filter("age", "ne", 31)) == [1, 2, 3, 4]
    assert kept(Filter("age", "eq", "n/a")) == [2]


def test_text_compares_byte_by_byte_and_empty_cells_are_empty_text() -> None:
    assert kept(Filter("name", "lt", "bob")) == [0, 3, 4]
    assert kept(Filter("name", "contains", "y")) == [2]
    assert kept(Filter("name", "in", ["cy", "ann", 3])) == [0, 2]
    assert kept(Filter("name", "eq", "")) == [3, 4]


def test_filters_together_keep_what_each_keeps_and_none_keep_everything() -> None:
    assert kept(Filter("age", "ge", 30), Filter("name", "ne", "ann")) == [3]
    assert kept() == [0, 1, 2, 3, 4]
