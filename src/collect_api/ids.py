"""Ids and the clock: a leaf that every room may use."""

import secrets
import time
from datetime import UTC, datetime


def utcnow() -> str:
    """RFC 3339 UTC with microseconds, so that strings sort like times."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def is_job_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id ``new_job_id`` makes: anything else names no
    job, and is not sent to the database (PostgreSQL refuses a text holding NUL, say)."""
    return len(value) == 26 and all(c in _CROCKFORD for c in value)


def new_job_id() -> str:
    """A 26-character, URL-safe id that sorts by creation time (a lower-case ULID)."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))
