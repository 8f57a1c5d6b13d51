"""Signed wire messages: an edge proves each message is its own, so that a client that can
publish on the broker (a stolen password, a misconfigured ACL, the broker itself) can neither
inject a reading nor, by replaying sequence numbers, make the gateway drop real ones.

A signed message is the payload followed by one trailer line::

    <payload>\\n#hmac-sha256 <key id> <hex HMAC-SHA256(key, topic + "\\n" + payload)>

The MAC covers the topic (a message cannot be moved to another edge's topic) and the whole
payload (edge, boot and seq included, so a replay is a duplicate the sequence tracker drops).
The key id (the first 8 hex digits of the key's SHA-256) says which key signed, so the core
accepts either of two keys while one is rotated. Keys are at least 32 characters; the edge
reads its own from ``HAZGW_SIGNING_KEY``, the core every edge's from ``HAZGW_SIGNING__KEYS``.
Pure functions: the edge's uplink and the core's boundary call them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from edge.mqtt import Uplink

TRAILER = b"\n#hmac-sha256 "
MIN_KEY_CHARS = 32
_MAC_HEX = 64


class SignatureError(ValueError):
    """The message is unsigned, signed with an unknown key, or altered."""


def key_id(key: bytes) -> str:
    """Which key signed (the first 8 hex digits of its SHA-256): names it, reveals nothing."""
    return hashlib.sha256(key).hexdigest()[:8]


def _mac(key: bytes, topic: str, body: bytes) -> str:
    return hmac.new(key, topic.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def sign(key: bytes, topic: str, payload: bytes) -> bytes:
    """The payload with its signature trailer."""
    return payload + TRAILER + f"{key_id(key)} {_mac(key, topic, payload)}".encode()


def split(payload: bytes) -> tuple[bytes, bytes | None]:
    """(body, trailer) of a message; the trailer is None when it carries none."""
    at = payload.rfind(TRAILER)
    if at < 0:
        return payload, None
    return payload[:at], payload[at + len(TRAILER):]


def verify(keys: Sequence[bytes], topic: str, payload: bytes) -> bytes:
    """The body of a message signed by one of ``keys`` (SignatureError otherwise)."""
    body, trailer = split(payload)
    if trailer is None:
        raise SignatureError("unsigned")
    kid, _, mac = trailer.decode("ascii", errors="replace").partition(" ")
    if len(mac) != _MAC_HEX:
        raise SignatureError("malformed signature")
    for key in keys:
        if key_id(key) == kid:
            if hmac.compare_digest(_mac(key, topic, body), mac):
                return body
            raise SignatureError(f"bad signature (key {kid})")
    raise SignatureError(f"signed with an unknown key {kid!r}")


class Verifier:
    """Which edges must sign, with which keys (two during a rotation)."""

    def __init__(self, keys: Mapping[str, Sequence[bytes]], required: bool = False) -> None:
        self._keys = {edge: list(ks) for edge, ks in keys.items() if ks}
        self.required = required

    def must_sign(self, edge: str) -> bool:
        """An edge with keys always signs; with ``required`` every edge must."""
        return self.required or edge in self._keys

    def body(self, edge: str, topic: str, payload: bytes) -> bytes:
        """The usable body of a message from ``edge`` (SignatureError when it must be signed
        and is not signed right). An edge that need not sign may still send a trailer: it is
        taken off unchecked."""
        if not self.must_sign(edge):
            return split(payload)[0]
        return verify(self._keys.get(edge, []), topic, payload)


class SignedUplink:
    """An uplink that signs every message before handing it on (so what the spool keeps is
    signed too)."""

    def __init__(self, uplink: Uplink, key: bytes) -> None:
        self._uplink = uplink
        self._key = key

    async def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        await self._uplink.publish(topic, sign(self._key, topic, payload), readings)

    async def close(self) -> None:
        await self._uplink.close()
