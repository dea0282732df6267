"""The guard every protected route calls: which key is this, may it, and is it within limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.cluster.redis_link import RedisLink
from app.config import Settings
from app.errors import Forbidden, RateLimited, Unauthorized
from app.security.keys import ApiKey, KeyRing, KeysError, load_keys
from app.security.ratelimit import Decision, Limiter, RateLimiter, Rates
from app.security.ratelimit_redis import RedisRateLimiter

log = logging.getLogger(__name__)


@dataclass
class Guard:
    """Keys and rate limits of one app instance, built once from settings."""

    keys: KeyRing
    limiter: Limiter

    @classmethod
    def build(cls, settings: Settings, redis: RedisLink | None = None) -> Guard:
        """Keys from settings; rate limits in ``redis`` when given, else in this process."""
        inline = settings.api_keys.get_secret_value() if settings.api_keys else None
        keys = load_keys(settings.api_keys_file, inline)
        if keys.open and settings.require_api_keys:
            raise KeysError(
                "require_api_keys is set but no API keys are configured "
                "(TEXTSERVE_API_KEYS_FILE or TEXTSERVE_API_KEYS)"
            )
        limiter: Limiter
        if redis is None:
            limiter = RateLimiter(
                settings.rate_limit_requests, settings.rate_limit_texts, settings.rate_limit_burst_s
            )
        else:
            rates = Rates(
                settings.rate_limit_requests, settings.rate_limit_texts, settings.rate_limit_burst_s
            )
            limiter = RedisRateLimiter(redis, rates, settings.redis_rate_limit_fail)
        return cls(keys, limiter)

    def announce(self) -> None:
        """Say at start whether anyone on the network can call every route."""
        if self.keys.open:
            log.warning(
                "NO API KEYS CONFIGURED: every route, admin ones included, is open to anyone "
                "who can reach this port. Set TEXTSERVE_API_KEYS_FILE (and "
                "TEXTSERVE_REQUIRE_API_KEYS=true) before exposing the service."
            )
        else:
            log.info("API keys: %d configured", len(self.keys))

    def authenticate(self, secret: str | None) -> ApiKey | None:
        """The caller's key; ``None`` in open mode. Raises ``Unauthorized`` otherwise."""
        if self.keys.open:
            return None
        key = self.keys.lookup(secret) if secret else None
        if key is None:
            raise Unauthorized("a valid API key is required (Authorization: Bearer or X-API-Key)")
        return key

    def authorize(self, key: ApiKey, scopes: tuple[str, ...]) -> str:
        """The first of ``scopes`` the key holds, whose limits the request is charged to."""
        for scope in scopes:
            if scope in key.scopes:
                return scope
        raise Forbidden(f"API key {key.name!r} lacks the scope {' or '.join(scopes)!r}")

    async def limit(self, key: ApiKey, scope: str, texts: int) -> Decision | None:
        """Charge the request to the key's buckets; ``RateLimited`` when they are empty.

        Returns the granted decision (``None`` when the scope has no limits), whose headers
        the answer carries too.
        """
        decision = await self.limiter.acquire(key.name, scope, texts)
        if decision is not None and not decision.allowed:
            headers = decision.headers()
            # The wait the message gives is the Retry-After the client reads (whole seconds).
            raise RateLimited(
                f"rate limit of API key {key.name!r} for scope {scope!r} reached; "
                f"retry after {headers['Retry-After']} s",
                headers,
            )
        return decision
