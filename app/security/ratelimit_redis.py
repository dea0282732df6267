"""Rate limits in the Redis the replicas share: one key's limit holds across all of them.

The same token buckets as the in-process ``RateLimiter``, kept in Redis hashes and updated by
one Lua script: both buckets are refilled, checked and (if both allow) charged in one atomic
step and one round trip. Refill uses Redis's own clock (``TIME``), so replicas whose clocks
differ still agree. Each bucket's key expires once the bucket would be full again: an idle
key costs no memory.

When Redis cannot be reached, ``fail`` decides (TEXTSERVE_REDIS_RATE_LIMIT_FAIL): ``local``
charges this replica's own in-process buckets, ``open`` lets the request through unlimited,
``closed`` refuses it (503, ``SharedStateUnavailable``).
"""

from __future__ import annotations

from typing import Any, Literal

from app.cluster.redis_link import RedisLink
from app.errors import SharedStateUnavailable
from app.security.ratelimit import BucketState, Decision, RateLimiter, Rates

FailMode = Literal["local", "open", "closed"]

# KEYS: one hash per bucket. ARGV: rate, capacity, cost of each bucket in KEYS' order.
# Returns {refusing bucket (1-based, 0 if granted), its wait in seconds, each bucket's tokens}.
# Numbers go back as strings: Redis truncates a Lua number to an integer.
BUCKETS_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tokens, worst, worst_wait = {}, 0, 0
for i = 1, #KEYS do
  local rate, cap, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local held = redis.call('HMGET', KEYS[i], 'tokens', 'stamp')
  local have = tonumber(held[1])
  if have == nil then
    have = cap
  else
    have = math.min(cap, have + math.max(0, now - tonumber(held[2])) * rate)
  end
  tokens[i] = have
  local missing = math.min(cost, cap) - have
  if missing > 1e-9 and missing / rate > worst_wait then
    worst, worst_wait = i, missing / rate
  end
end
local reply = {tostring(worst), tostring(worst_wait)}
for i = 1, #KEYS do
  local rate, cap, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  if worst == 0 then
    tokens[i] = tokens[i] - math.min(cost, cap)
    redis.call('HSET', KEYS[i], 'tokens', tostring(tokens[i]), 'stamp', tostring(now))
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - tokens[i]) / rate * 1000) + 1000)
  end
  reply[#reply + 1] = tostring(tokens[i])
end
return reply
"""


class RedisRateLimiter:
    """Token buckets per (key, scope) in Redis, with a fallback for when it is unreachable."""

    def __init__(self, link: RedisLink, rates: Rates, fail: FailMode = "local") -> None:
        self.link = link
        self.rates = rates
        self.fail = fail
        self._script = link.client.register_script(BUCKETS_LUA)
        # Only used while Redis is down, and only with fail=local.
        self._local = RateLimiter(rates.requests_per_s, rates.texts_per_s, rates.burst_s)

    def counts_texts(self, scope: str) -> bool:
        return self.rates.texts_per_s.get(scope, 0) > 0

    async def acquire(self, key: str, scope: str, texts: int = 1) -> Decision | None:
        buckets = self.rates.buckets(scope, texts)
        if not buckets:
            return None
        # One hash tag for both keys: a Redis Cluster keeps them in one slot, as a script
        # touching both requires. Key names hold no braces (app/security/keys.py).
        tag = f"{{{key}:{scope}}}"
        keys = [self.link.key("rl", tag, kind) for kind, _, _, _ in buckets]
        args: list[Any] = []
        for _, rate, capacity, cost in buckets:
            args += [repr(rate), repr(capacity), repr(cost)]
        try:
            reply = await self.link.call(
                "rate_limits", lambda _: self._script(keys=keys, args=args)
            )
        except SharedStateUnavailable:
            return self._fallback(key, scope, texts)
        worst, wait = int(reply[0]), float(reply[1])
        states = tuple(
            BucketState.of(kind, rate, capacity, float(tokens))
            for (kind, rate, capacity, _), tokens in zip(buckets, reply[2:], strict=True)
        )
        if worst:
            return Decision.of(False, states[worst - 1], states, wait)
        return Decision.of(True, states[0], states)

    def _fallback(self, key: str, scope: str, texts: int) -> Decision | None:
        self.link.fallback("rate_limits", self.fail)
        if self.fail == "local":
            return self._local.check(key, scope, texts)
        if self.fail == "open":
            return None
        raise SharedStateUnavailable(
            "rate limits are kept in Redis, which cannot be reached; refusing keyed requests "
            "until it answers (TEXTSERVE_REDIS_RATE_LIMIT_FAIL=closed)"
        )
