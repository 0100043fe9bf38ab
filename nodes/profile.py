"""A node profile: the folder ``axis agency add`` writes for one agency (SPEC §4)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from axis.core.edxml_dialects import DIALECTS
from axis.core.formats import Organ
from axis.errors import ProfileError

#: The optional keys of node.toml that describe the agency, as ``From`` carries them.
ORGAN_KEYS = ("organization_in_charge", "address", "email", "telephone", "fax", "website")
DEFAULT_PLACE = "Hà Nội"


@dataclass(frozen=True)
class Profile:
    """An agency's identity and where its hub is: ``key.pem cert.pem ca.pem hub.pem node.toml``.

    ``ca.pem`` holds the CAs the hub trusts; ``hub.pem`` the hub's own certificate. node.toml
    holds ``hub``, ``organ_id`` and ``name``, and may hold what the field's software shows of
    a sender: ``organization_in_charge`` (its superior body), ``address``, ``email``,
    ``telephone``, ``fax``, ``website``; and ``place``, where it promulgates its documents
    (PromulgationInfo/Place, default Hà Nội); and ``dialect``, the layout of edXML it writes
    (``standard``, or one of the field's: :mod:`axis.core.edxml_dialects`).
    """

    root: Path
    organ_id: str
    name: str
    hub_url: str
    details: Mapping[str, str] = field(default_factory=dict)  # the ORGAN_KEYS it has
    place: str = DEFAULT_PLACE
    dialect: str = "standard"

    def organ(self) -> Organ:
        """The agency as ``From`` names it: its OrganId, its name and the details it has."""
        d = self.details
        return Organ(
            self.organ_id,
            self.name or self.organ_id,
            organization_in_charge=d.get("organization_in_charge"),
            organ_add=d.get("address"),
            email=d.get("email"),
            telephone=d.get("telephone"),
            fax=d.get("fax"),
            website=d.get("website"),
        )

    @property
    def key(self) -> Path:
        return self.root / "key.pem"

    @property
    def cert(self) -> Path:
        return self.root / "cert.pem"

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def hub_cert(self) -> Path:
        return self.root / "hub.pem"

    @property
    def received(self) -> Path:
        return self.root / "received"

    @classmethod
    def load(cls, root: Path) -> Profile:
        """Read ``root/node.toml`` and check the key material is there.

        Raises:
            ProfileError: a file is missing or node.toml is not valid.
        """
        toml = root / "node.toml"
        if not toml.exists():
            raise ProfileError(f"{root} is not a node profile (no node.toml)")
        try:
            doc = tomllib.loads(toml.read_text(encoding="utf-8"))
            details = {k: str(doc[k]).strip() for k in ORGAN_KEYS if str(doc.get(k, "")).strip()}
            profile = cls(
                root,
                str(doc["organ_id"]),
                str(doc.get("name", "")),
                str(doc["hub"]),
                details,
                str(doc.get("place") or DEFAULT_PLACE),
                str(doc.get("dialect") or "standard"),
            )
        except (tomllib.TOMLDecodeError, KeyError) as exc:
            raise ProfileError(f"{toml}: {exc}") from exc
        if profile.dialect not in DIALECTS:
            raise ProfileError(
                f"{toml}: dialect {profile.dialect!r} is none of {', '.join(DIALECTS)}"
            )
        for path in (profile.key, profile.cert, profile.ca):
            if not path.exists():
                raise ProfileError(f"the profile has no {path.name} ({path})")
        return profile

    def next_number(self) -> int:
        """The agency's next document number (a counter kept in the profile)."""
        counter = self.root / "counter"
        current = int(counter.read_text()) if counter.exists() else 0
        tmp = counter.with_suffix(".tmp")
        tmp.write_text(str(current + 1))
        os.replace(tmp, counter)
        return current + 1


def resolve(profile_dir: str | os.PathLike[str] | None) -> Profile:
    """``--profile``, else ``$AXIS_PROFILE``."""
    chosen = profile_dir or os.environ.get("AXIS_PROFILE")
    if not chosen:
        raise ProfileError("say which agency: --profile DIR or $AXIS_PROFILE")
    return Profile.load(Path(chosen))
