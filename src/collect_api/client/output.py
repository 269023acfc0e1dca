"""Where a command's output goes.

stdout holds the answer: tables and sentences for people, or with ``--json`` exactly one
JSON document and nothing else. stderr holds the rest: errors, notes about what is going
on, and, only when it is a terminal, progress bars and questions.
"""

import json
import shutil
import sys
from typing import Any

from rich.console import Console, RenderableType


class Output:
    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        # Piped tables keep their rows on one line rather than the 80 columns of no terminal.
        width = None if sys.stdout.isatty() else max(shutil.get_terminal_size().columns, 160)
        self.out = Console(highlight=False, width=width)
        self.err = Console(stderr=True, highlight=False)

    @property
    def shows_progress(self) -> bool:
        return sys.stderr.isatty()

    @property
    def can_ask(self) -> bool:
        """A person is there to answer a question: a terminal on both ends."""
        return sys.stdin.isatty() and sys.stderr.isatty()

    def document(self, doc: Any) -> None:
        """The one JSON document of ``--json``."""
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()

    def show(self, renderable: RenderableType) -> None:
        """Part of the answer for people; nothing with ``--json``."""
        if not self.as_json:
            self.out.print(renderable)

    def line(self, text: str) -> None:
        """A plain line of the answer for people (no markup, so the service's text is safe)."""
        if not self.as_json:
            self.out.print(text, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        """A message beside the answer: what happened or what to do next."""
        self.err.print(text, markup=False, soft_wrap=True)


def error(text: str) -> None:
    """One line on stderr: what went wrong, as the service or the client words it."""
    print(text, file=sys.stderr, flush=True)
