"""The thin layer around :mod:`axis.core.routing`: fetch from the store the facts a package
needs (the agencies its OrganIds name, the documents it names with their deliveries), then let
the pure decision say where it goes. All the rules are in the core; nothing is decided here.
"""

from __future__ import annotations

from collections.abc import Mapping

from axis.core import routing as rules
from axis.core.formats import Package
from axis.core.routing import Facts, Named, Party, Routed, Stored
from axis.host.config import Limits
from axis.store.base import Agency, Store
from axis.usecases.directory import Directory

__all__ = ["Routed", "Router", "party_of"]


def party_of(agency: Agency, codes: Mapping[str, str | None] | None = None) -> Party:
    """An agency as routing sees it, holding ``codes`` (each with its successor once
    closed) besides its OrganId."""
    held = codes or {}
    return Party(
        agency.organ_id,
        frozenset(held) | {agency.organ_id},
        agency.active,
        bool(agency.endpoint),
        frozenset(c for c, successor in held.items() if successor is not None),
    )


class Router:
    """Routes packages against one store's directory (as ``directory`` keeps it) and
    documents."""

    def __init__(self, store: Store, limits: Limits, directory: Directory) -> None:
        self.store = store
        self.directory = directory
        self.limits = rules.Limits(limits.max_recipients, limits.max_attachments)

    async def route(
        self, sender: Agency, codes: Mapping[str, str | None], package: Package
    ) -> Routed:
        """Where ``package`` from ``sender`` goes; ``sender`` holds ``codes``, each with its
        successor once closed.

        Raises the InputError that explains why the package cannot go anywhere."""
        need = rules.needs(package)
        named = {code: await self._named(code) for code in need.codes}
        only = rules.deliveries_read(package, sender.organ_id, named)
        documents: dict[tuple[str, str], tuple[Stored, ...]] = {}
        for owner_code, document_id in need.documents:
            owner = named[owner_code].party
            if owner is not None:
                documents[(owner.organ_id, document_id)] = await self.store.stored_edocs(
                    owner.organ_id, document_id, only
                )
        if need.recipients:  # a recall or an update goes to the document's recipients
            for stored in documents.values():
                for recipient in {r for s in stored for r in s.deliveries} - named.keys():
                    named[recipient] = await self._named(recipient)
        facts = Facts(named, documents)
        return rules.route(party_of(sender, codes), package, facts, self.limits)

    async def _named(self, code: str) -> Named:
        """What ``code`` stands for: the agency holding it (open or closed), and its
        successor once closed."""
        found = await self.directory.code_holder(code)
        if found is None:
            return Named(None)
        record, agency = found
        return Named(party_of(agency) if agency else None, record.successor)
