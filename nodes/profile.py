"""A node profile: the folder ``axis agency add`` writes for one agency (SPEC §4)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from axis.errors import ProfileError


@dataclass(frozen=True)
class Profile:
    """An agency's identity and where its hub is: ``key.pem cert.pem ca.pem hub.pem node.toml``.

    ``ca.pem`` holds the CAs the hub trusts; ``hub.pem`` the hub's own certificate.
    """

    root: Path
    organ_id: str
    name: str
    hub_url: str

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
            profile = cls(root, str(doc["organ_id"]), str(doc.get("name", "")), str(doc["hub"]))
        except (tomllib.TOMLDecodeError, KeyError) as exc:
            raise ProfileError(f"{toml}: {exc}") from exc
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
