"""API token authentication with a short-lived, per-process cache of good tokens.

DRF's TokenAuthentication costs a joined SELECT (token + user) on every call: about 0.5 ms of a
~1.5 ms API request, the largest single slice of it. `CachedTokenAuthentication` remembers a
token that authenticated for SYNTHTUNE_TOKEN_CACHE_S seconds (default 5; 0 turns the cache off).

What callers may rely on:
- A revoked token (deleted, or its user deactivated or deleted) is refused at most
  SYNTHTUNE_TOKEN_CACHE_S seconds later in every process; in the process that made the change
  (an admin page, `Token.objects...delete()` in a web request) at once, because saving or
  deleting a token or a user empties this process's cache.
- Only successes are cached: a wrong or unknown token always goes to the database, so the cache
  changes nothing for guessing, and a newly created token works at once.
- Entries are keyed by the token's SHA-256, never the token itself, and each request gets its own
  copy of the user and token, so one request's changes to them never reach another's.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time

from django.conf import settings
from rest_framework.authentication import TokenAuthentication

# More distinct good tokens than this within one TTL (a busy multi-tenant process) and the
# cache starts over: bounded memory, and still one query per token per TTL at worst.
MAX_ENTRIES = 4096

_clock = time.monotonic  # tests move it on instead of sleeping
_lock = threading.Lock()
_entries: dict[bytes, tuple[float, object, object]] = {}  # sha256(key) -> (expires, user, token)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def token_cache_clear(**_ignored) -> None:
    """Forget every cached token (this process only). Connected to token and user saves and deletes."""
    with _lock:
        _entries.clear()


class CachedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's TokenAuthentication, with the cache described above."""

    def authenticate_credentials(self, key):
        ttl = settings.SYNTHTUNE_TOKEN_CACHE_S
        if ttl <= 0:
            return super().authenticate_credentials(key)
        digest, now = _digest(key), _clock()
        entry = _entries.get(digest)
        if entry is not None and entry[0] > now:
            return _copies(entry[1], entry[2])
        user, token = super().authenticate_credentials(key)  # raises for an unknown key or inactive user
        with _lock:
            if len(_entries) >= MAX_ENTRIES:
                _entries.clear()
            _entries[digest] = (now + ttl, *_copies(user, token))
        return user, token


def _copies(user, token):
    """Shallow copies (about 10 us), the token's `user` the copied user, not the cached one."""
    user, token = copy.copy(user), copy.copy(token)
    token.user = user
    return user, token


def connect_signals() -> None:
    """Empty the cache whenever a token or a user is saved or deleted (CoreConfig.ready)."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_delete, post_save
    from rest_framework.authtoken.models import Token

    for sender in (Token, get_user_model()):
        for signal in (post_save, post_delete):
            signal.connect(token_cache_clear, sender=sender, dispatch_uid=f"synthtune-token-cache-{sender.__name__}")
