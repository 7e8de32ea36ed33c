"""Rate limits on API calls: 429 with Retry-After past SYNTHTUNE_THROTTLE_USER (per user) or
SYNTHTUNE_THROTTLE_ANON (per address, callers without a login).

DRF's throttles, with the rate read from settings on each request rather than frozen into the
class at import, so a changed setting (a test's) takes effect. An empty rate is no limit and
costs nothing. Counts live in Django's default cache, local memory (settings.CACHES): each
process counts alone, so with W gunicorn workers and R replicas a caller may make up to W x R
times the rate. The defaults are generous: a guard against runaway clients, not a quota.

DRF checks throttles after authentication and permissions, so a call refused 401/403 is not
counted, and only views open to anonymous callers (the old routes with
SYNTHTUNE_LEGACY_ALLOW_ANONYMOUS) meet the anonymous rate. Event streams are not throttled
(core.api.EventStreamApi); /healthz and /metrics are plain Django views, never throttled.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import throttling


class _SettingRate:
    setting: str

    def get_rate(self) -> str | None:
        return getattr(settings, self.setting, "") or None

    def describe(self) -> str:
        return f"{self.rate} per {self.who} ({self.setting})"


class UserRateThrottle(_SettingRate, throttling.UserRateThrottle):
    """Per user (or per address for a caller without a login), SYNTHTUNE_THROTTLE_USER."""

    setting = "SYNTHTUNE_THROTTLE_USER"
    who = "user"


class AnonRateThrottle(_SettingRate, throttling.AnonRateThrottle):
    """Per address, callers without a login only, SYNTHTUNE_THROTTLE_ANON."""

    setting = "SYNTHTUNE_THROTTLE_ANON"
    who = "address without a login"
