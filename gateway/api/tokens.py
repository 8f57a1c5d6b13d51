"""API tokens: kept as SHA-256 digests, at least 128 bits, refused attempts said and slowed.

``HAZGW_API__TOKENS`` maps a token to its user. A key ``sha256:<64 hex digits>`` is a digest
(``hazgw token new ROLE NAME`` prints a fresh token and its config line); any other key is a
plaintext token, accepted when it has at least 22 characters (128 bits of a URL-safe base64
token) and reported at start, so that a plant moves to digests. A presented token is hashed
and looked up by its digest: the comparison is over digests, which tell nothing of the token.

Refused tokens are counted per client address; the first in a minute is logged, then the
10th, 100th, …; after 5 in a minute each further refusal waits (0.25 s, doubling, at most 5 s)
before it is answered, so guessing is slow and visible.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Mapping

from gateway.settings import TOKEN_DIGEST_PREFIX, ApiUser, token_key_problem

log = logging.getLogger(__name__)

WINDOW_S = 60.0
FREE_FAILURES = 5
MAX_DELAY_S = 5.0
MAX_CLIENTS = 10_000                  # clients remembered (the oldest forgotten first)


def digest(token: str) -> str:
    """The SHA-256 digest of a token, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh token: 32 random bytes, URL-safe base64 (256 bits)."""
    return secrets.token_urlsafe(32)


class TokenTable:
    """Who a presented token belongs to."""

    def __init__(self, configured: Mapping[str, ApiUser]) -> None:
        self._by_digest: dict[str, ApiUser] = {}
        self.plaintext = 0
        for key, user in configured.items():
            problem = token_key_problem(key)
            if problem is not None:
                raise ValueError(f"api token of {user.name}: {problem}")
            if key.startswith(TOKEN_DIGEST_PREFIX):
                self._by_digest[key[len(TOKEN_DIGEST_PREFIX):]] = user
            else:
                self.plaintext += 1
                self._by_digest[digest(key)] = user

    def __len__(self) -> int:
        return len(self._by_digest)

    def user(self, token: str) -> ApiUser | None:
        """The token's user, or None."""
        d = digest(token)
        found = self._by_digest.get(d)
        # the dictionary found it by its digest; compare_digest keeps the last step even
        return found if found is not None and hmac.compare_digest(d, digest(token)) else None


class FailedAuth:
    """Refused tokens per client: logged sparingly, answered ever more slowly."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self.total = 0

    def delay_s(self, client: str, now: float | None = None) -> float:
        """Record a refusal from ``client``; how long to wait before answering it."""
        now = time.monotonic() if now is None else now
        self.total += 1
        q = self._seen.pop(client, None) or deque()
        while q and now - q[0] > WINDOW_S:
            q.popleft()
        q.append(now)
        self._seen[client] = q
        while len(self._seen) > MAX_CLIENTS:
            self._seen.popitem(last=False)
        n = len(q)
        if n == 1 or n in (10, 100, 1000, 10_000):
            log.warning("api: refused a token from %s (%d in the last minute%s)", client, n,
                        "; answers slowed" if n > FREE_FAILURES else "")
        if n <= FREE_FAILURES:
            return 0.0
        return float(min(MAX_DELAY_S, 0.25 * 2.0 ** (n - FREE_FAILURES - 1)))

    async def refuse(self, client: str) -> None:
        """Wait as long as ``client``'s refusals call for."""
        wait = self.delay_s(client)
        if wait:
            await asyncio.sleep(wait)
