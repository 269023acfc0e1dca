"""Export filters applied to Arrow batches, in the data plane's worker: the server checks
filters (``storage.filters``) without loading Arrow, and the worker applies them here."""

import pyarrow as pa
import pyarrow.compute as pc

from collect_api.storage.filters import Filter, is_number

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
        elif is_number(f.value):
            compared = _compare(f.op, _numbers(cells), pa.scalar(float(f.value), pa.float64()))
            # ``ne`` holds for a cell that holds no number, as SQL's IS NOT does.
            this = pc.fill_null(compared, f.op == "ne")
        else:
            this = _compare(f.op, cells, pa.scalar(f.value, pa.string()))
        keep = this if keep is None else pc.and_(keep, this)
    if keep is None:
        return pc.fill_null(pa.nulls(table.num_rows, pa.bool_()), True)
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
