"""Promotion nudges: a promotion or rollback on one replica reaches the others at once.

Every replica follows the store's active pointers with a file watcher
(TEXTSERVE_WATCH_INTERVAL_S). With Redis, the replica that moves a pointer also publishes
the model's name on a channel; every replica subscribed to it re-reads that pointer when the
message arrives, without waiting for its next watch step. The message is only a nudge: the
pointer in the store stays the truth, so a lost message (Redis down, a replica reconnecting)
costs at most one watch interval, and a replica's own message finds nothing to do.

Runs in threads of its own with the synchronous client: promotions happen on worker threads,
and a subscriber waiting on a socket has no business on the event loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from app.cluster.redis_link import RedisLink

log = logging.getLogger(__name__)
# How long the subscriber waits for a message before looking at its stop flag.
POLL_S = 0.5


class PromotionNudge:
    """Publishes ``{"model", "version"}`` on promote; calls ``on_nudge(model)`` on each message."""

    def __init__(self, link: RedisLink, on_nudge: Callable[[str], object]) -> None:
        self.link = link
        self.channel = link.key("promotions")
        self._on_nudge = on_nudge
        timeout = link.timeout_s
        self._client = redis.Redis.from_url(
            link.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a failed publish is left to the file watcher
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.subscribed = threading.Event()  # set while the subscription is live (tests wait)

    def published(self, name: str, version: int) -> None:
        """Tell the other replicas ``name`` moved (a registry promotion listener). Never
        raises: the file watcher brings them the promotion anyway, only later."""
        message = json.dumps({"model": name, "version": version})
        try:
            self._client.publish(self.channel, message)
        except (RedisError, OSError) as exc:
            self.link.failed("promotions", exc)
            log.warning("promotion of %s@%s not announced (%s); replicas see it at "
                        "their next watch step", name, version, exc)  # fmt: skip

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._listen, name="promotion-nudge", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self._client.close()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._subscribe_and_wait()
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                self.link.failed("promotions", exc)
                # Reconnect after the link's retry period; promotions meanwhile reach this
                # replica through the file watcher.
                self._stop.wait(self.link.retry_s)

    def _subscribe_and_wait(self) -> None:
        with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
            pubsub.subscribe(self.channel)
            self.subscribed.set()
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=POLL_S)
                if message is None:
                    continue
                self._handle(message.get("data"))

    def _handle(self, data: object) -> None:
        try:
            name = json.loads(data)["model"]  # type: ignore[arg-type]
        except (TypeError, ValueError, KeyError):
            log.warning("ignored a malformed promotion message: %r", data)
            return
        started = time.perf_counter()
        try:
            self._on_nudge(str(name))
        except Exception:
            log.exception("following the promotion of %s failed", name)
            return
        log.debug("promotion nudge for %s handled in %.3f s", name, time.perf_counter() - started)
