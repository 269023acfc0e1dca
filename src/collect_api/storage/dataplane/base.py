"""What the worker's operations share: the interrupt and the errors they report."""


class Interrupted(Exception):
    """The server asked for the request in hand to stop: it stops between two statements."""
