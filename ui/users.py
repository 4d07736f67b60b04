"""Who may sign in to the web app, and which access groups each person searches as.

A users file is TOML or JSON:

    [users.alice]
    password_hash = "scrypt$16384$8$1$<salt>$<hash>"   # python -m clipcite.ui.users hash
    groups = ["staff"]

    role = "editor"       # viewer (the default), editor or admin

    [users.admin]
    password_hash = "..."
    role = "admin"        # sees every recording, whatever its groups (`admin = true` also works)

JSON is the same shape: {"users": {"alice": {"password_hash": "...", "groups": ["staff"]}}}.
A signed-in user's groups go into Filters(groups=...) for every search, answer, library listing
and media request; an admin searches unrestricted (groups None).

Roles decide who changes the library. A *viewer* asks, searches, plays and downloads what their
groups may see. An *editor* may also upload (the upload gets the editor's groups) and re-ingest,
rename speakers in or delete a recording whose every group is one of theirs, so that an editor
of one group never changes what another group sees. An *admin* may do all of it to every
recording, including those with no groups (open to everyone, such as ones ingested from the CLI
without --groups).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import json
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~50 ms and 16 MiB per check


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A salted scrypt hash, written "scrypt$N$r$p$salt$hash" (base64 salt and hash)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify(password: str, stored: str) -> bool:
    """True when the password matches the stored hash; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(expected),
                             maxmem=128 * int(n) * int(r) * int(p) + (1 << 20))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


VIEWER, EDITOR, ADMIN = "viewer", "editor", "admin"
ROLES = (VIEWER, EDITOR, ADMIN)


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    groups: tuple[str, ...] = ()
    role: str = VIEWER

    @property
    def admin(self) -> bool:
        return self.role == ADMIN

    @property
    def access(self) -> frozenset[str] | None:
        """What goes into Filters(groups=...): None (everything) for an admin."""
        return None if self.admin else frozenset(self.groups)

    @property
    def may_upload(self) -> bool:
        """An editor's upload is for their groups: with none it would be open to everyone."""
        return self.admin or (self.role == EDITOR and bool(self.groups))

    def may_change(self, recording_groups: list[str] | tuple[str, ...]) -> bool:
        """Re-ingest, rename speakers in or delete a recording with these groups."""
        if self.admin:
            return True
        return (self.role == EDITOR and bool(recording_groups)
                and set(recording_groups) <= set(self.groups))


@dataclass
class Users:
    users: dict[str, User] = field(default_factory=dict)

    def check(self, username: str, password: str) -> bool:
        """Gradio's auth callable: a wrong name costs as long as a wrong password."""
        user = self.users.get(username)
        if user is None:
            verify(password, _DUMMY)
            return False
        return verify(password, user.password_hash)

    def groups_for(self, username: str | None) -> frozenset[str] | None:
        """Filters.groups for this user; an unknown or missing user sees only public ones."""
        user = self.users.get(username or "")
        return user.access if user else frozenset({"\0nobody"})

    def get(self, username: str | None) -> User | None:
        return self.users.get(username or "")


_DUMMY = hash_password("not a password")


class UsersFileError(ValueError):
    pass


def load_users(path: Path) -> Users:
    """Read a users file (.toml or .json), with one-sentence errors for mistakes in it."""
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UsersFileError(f"cannot read the users file {path}: {e.strerror or e}") from None
    try:
        data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise UsersFileError(f"the users file {path} is not valid "
                             f"{'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {e}") \
            from None
    table = data.get("users") if isinstance(data, dict) else None
    if not isinstance(table, dict) or not table:
        raise UsersFileError(f"the users file {path} names no users (expected a [users.NAME] "
                             "table with password_hash and groups)")
    users: dict[str, User] = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("password_hash"), str):
            raise UsersFileError(f"user {name!r} in {path} needs a password_hash "
                                 "(make one with: python -m clipcite.ui.users hash)")
        groups = entry.get("groups", [])
        if isinstance(groups, str):
            groups = [g.strip() for g in groups.split(",") if g.strip()]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise UsersFileError(f"groups of user {name!r} in {path} must be a list of names")
        role = entry.get("role", ADMIN if entry.get("admin") is True else VIEWER)
        if role not in ROLES:
            raise UsersFileError(f"the role of user {name!r} in {path} must be one of "
                                 f"{', '.join(ROLES)}, not {role!r}")
        if entry.get("admin") is True and role != ADMIN:
            raise UsersFileError(f"user {name!r} in {path} has admin = true and role = "
                                 f"{role!r}: keep one of them")
        users[name] = User(name, entry["password_hash"], tuple(groups), role)
    return Users(users)


def main(argv: list[str] | None = None) -> int:
    """`python -m clipcite.ui.users hash`: prints a password hash for a users file."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["hash"]:
        print("usage: python -m clipcite.ui.users hash   (asks for a password, prints its hash)")
        return 2
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Again: "):
        print("The two passwords differ; nothing printed.")
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
