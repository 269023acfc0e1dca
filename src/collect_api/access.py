"""Who is calling: API keys and the tenants they belong to.

``COLLECT_API_KEYS`` holds ``tenant:key`` pairs separated by commas. With none, the service
is open and everything belongs to one tenant, ``default``. A key is compared with every
configured key in constant time, so timing tells nothing about which one nearly matched;
keys never appear in logs (they travel in a header or a cookie, never in a URL).
"""

import hmac
from dataclasses import dataclass

DEFAULT_TENANT = "default"
KEY_COOKIE = "collect_key"


class BadKeys(ValueError):
    pass


@dataclass(frozen=True)
class Access:
    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, spec: str) -> "Access":
        pairs: list[tuple[str, bytes]] = []
        for item in filter(None, (part.strip() for part in spec.split(","))):
            tenant, sep, key = item.partition(":")
            tenant, key = tenant.strip(), key.strip()
            if not sep or not tenant or not key:
                raise BadKeys(
                    "COLLECT_API_KEYS must be comma-separated tenant:key pairs; one entry has "
                    "no tenant or no key"
                )
            pairs.append((tenant, key.encode()))
        if len({key for _, key in pairs}) != len(pairs):
            raise BadKeys("COLLECT_API_KEYS gives the same key twice")
        return cls(tuple(pairs))

    @property
    def open(self) -> bool:
        return not self.keys

    def tenant_of(self, key: str) -> str | None:
        """The tenant whose key this is, or None; looks at every key whatever matches."""
        given = key.encode()
        found = None
        for tenant, known in self.keys:
            if hmac.compare_digest(given, known):
                found = tenant
        return found

    def describe(self) -> str:
        if self.open:
            return "open: no API keys, one tenant (set COLLECT_API_KEYS to require keys)"
        tenants = sorted({tenant for tenant, _ in self.keys})
        return f"API keys required, {len(self.keys)} key(s) for tenant(s) {', '.join(tenants)}"
