"""The hub's agency directory as a node keeps it (``GET /v1/agencies``).

A node needs it twice. Writing, it puts each recipient's registered name in ``To/OrganName``,
where the field's parsers read a name (they show it to the clerk), not a code. Reading, it
tells whether a package's signing certificate belongs to the agency its ``From`` names when
the two name different codes of one agency (the 2016 OrganId in the certificate, the Decision
20/2020 code in From, say). It is fetched once and again only when something is not in it:
agencies join the hub far more rarely than packages arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Listing:
    """One agency of the directory: the code the hub files it under, its registered name,
    whether it takes packages, the codes it answers to, and its closed codes (code →
    successor)."""

    organ_id: str
    name: str
    active: bool
    codes: tuple[str, ...]
    closed: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Listing:
        organ_id = str(row["organ_id"])
        codes = tuple(str(c) for c in row.get("codes") or (organ_id,))
        closed = {str(k): str(v) for k, v in (row.get("closed") or {}).items()}
        return cls(organ_id, str(row.get("name") or organ_id), bool(row["active"]), codes, closed)


class Directory:
    """Agencies by every code they hold, open or closed."""

    def __init__(self, listings: Iterable[Listing] = ()) -> None:
        self.listings = tuple(listings)
        self._by_code: dict[str, Listing] = {}
        for listing in self.listings:
            for code in (listing.organ_id, *listing.codes, *listing.closed):
                self._by_code[code] = listing

    @classmethod
    def from_json(cls, rows: Iterable[Mapping[str, Any]]) -> Directory:
        return cls(Listing.from_json(row) for row in rows)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def find(self, code: str) -> Listing | None:
        """The agency holding ``code``, open or closed."""
        return self._by_code.get(code)

    def name_of(self, code: str) -> str | None:
        """The registered name of the agency holding ``code``."""
        listing = self._by_code.get(code)
        return listing.name if listing else None

    def same_agency(self, one: str, other: str) -> bool:
        """Whether two codes are held by one agency."""
        listing = self._by_code.get(one)
        return listing is not None and listing is self._by_code.get(other)
