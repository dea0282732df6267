"""API keys, scopes and per-key rate limits. Knows nothing of HTTP; ``app.api.auth`` does."""

from app.security.guard import Guard
from app.security.keys import SCOPES, ApiKey, KeyRing, KeysError, load_keys
from app.security.ratelimit import Decision, Limiter, RateLimiter, TokenBucket

__all__ = [
    "SCOPES",
    "ApiKey",
    "Decision",
    "Guard",
    "KeyRing",
    "KeysError",
    "Limiter",
    "RateLimiter",
    "TokenBucket",
    "load_keys",
]
