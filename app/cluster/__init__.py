"""State that replicas share when there are several: the Redis link, its health, and the
promotion nudge. Conversations and rate limits build their Redis implementations on the link
(app/serving/conversations_redis.py, app/security/ratelimit_redis.py). See docs/scale-out.md.
"""
