"""Who may change the cluster from a dashboard page.

Controls are bound to the local machine by default: a dashboard served on 127.0.0.1 can only
be reached from it. Served on any other address, the command makes a token and prints the URL
that carries it (`?token=...`); a session opened without it (or with a wrong one) gets a
dashboard that watches only, and its controller refuses every request, so a crafted request
changes nothing either.

A session from a loopback address needs no token (it is the machine the cluster runs on),
unless the policy says `trust_loopback=False`.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TOKEN_ARG = "token"

LOCAL_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})


def is_local_address(address: str | None) -> bool:
    """True for an address only this machine can reach (None: Panel's default, localhost)."""
    if address is None or address in LOCAL_ADDRESSES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_loopback(remote_ip: str | None) -> bool:
    if remote_ip is None:
        return False
    try:
        return ipaddress.ip_address(remote_ip.split("%")[0]).is_loopback
    except ValueError:
        return remote_ip == "localhost"


def new_token() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class AccessPolicy:
    """`token`: None means no token exists (only local sessions may control)."""

    token: str | None = None
    trust_loopback: bool = True

    @classmethod
    def for_address(cls, address: str | None, token: str | None = None) -> AccessPolicy:
        """No token when served on a loopback address, else `token` or a fresh one."""
        if is_local_address(address):
            return cls(token=token)
        return cls(token=token or new_token())

    def allows(
        self, *, token: str | None, remote_ip: str | None, in_notebook: bool = False
    ) -> bool:
        """Whether a session with this query token from this address may use the controls."""
        if in_notebook:
            return True  # the kernel's own user: the same process as the cluster
        if self.trust_loopback and is_loopback(remote_ip):
            return True
        if self.token is None or token is None:
            return False
        return hmac.compare_digest(token.encode(), self.token.encode())

    def url(self, base: str) -> str:
        """`base` with the token argument, to print for the instructor."""
        if self.token is None:
            return base
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}{TOKEN_ARG}={self.token}"


def token_from_args(args: Mapping[str, Sequence[bytes | str]] | None) -> str | None:
    """The `token` query argument of a Panel session (`pn.state.session_args`)."""
    if not args:
        return None
    values = args.get(TOKEN_ARG)
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


NO_RIGHTS = (
    "this page watches only: controls need the token that `raftoral-lab` printed "
    "(open the URL with ?token=...)"
)
