"""What both sides of the data plane share: the interrupt, how big a chunk is, and the
column of a dataset table that keeps its rows' quote bits (``storage.datasets``)."""

QUOTES = "_q"
# The columns the quote bits cover: bits 0-62 of a signed 64-bit integer.
QUOTED_COLUMNS_MAX = 63


class Interrupted(Exception):
    """The server asked for the request in hand to stop: it stops between two statements."""


class ChunkBudget:
    """How many bytes (or rows) the next chunk should take: about ``target_s`` of work,
    judged by the chunks so far. A run starts small, so that its first chunk (after a start
    or a resume) commits soon, and grows from there."""

    def __init__(self, *, target_s: float = 0.25, first: int, least: int, most: int) -> None:
        self.target_s = target_s
        self.size = first
        self._least = least
        self._most = most

    def observe(self, size: int, seconds: float) -> None:
        if size <= 0:
            return
        if seconds <= 0:
            self.size = min(self._most, self.size * 4)
            return
        wanted = size / seconds * self.target_s
        # Grow at most fourfold a chunk: one quick chunk says little about the next.
        self.size = int(max(self._least, min(self._most, wanted, self.size * 4)))
