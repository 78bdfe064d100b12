"""How hard the PKB client tries: retries with backoff, and a client-side rate limit.

`Retries` resends a request that failed with `PkbUnavailable` (no connection, 429, 502, 503,
504), waiting exponentially longer with full jitter, or as long as PKB's `Retry-After` asks.
The retry loop itself is tenacity's; this module only says what is retried and how long to wait.
A request whose outcome is unknown (`PkbOutcomeUnknown`) is never retried here: the caller must
first record that PKB may already have issued codes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from pkb_letters.errors import PkbUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    initial_delay: float = 0.5  # seconds; the n-th retry waits up to initial_delay * 2**n
    max_delay: float = 30.0
    max_retry_after: float = 300.0  # a Retry-After longer than this is treated as an outage

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")


class Retries:
    def __init__(self, policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy = policy
        self._sleep = sleep
        self._backoff = tenacity.wait_random_exponential(multiplier=policy.initial_delay, max=policy.max_delay)

    def attempts(self) -> tenacity.Retrying:
        """Iterate and run the request inside `with attempt:`; the last error is re-raised."""
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(PkbUnavailable),
            stop=tenacity.stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            # Honour the server, plus a little jitter so parallel workers do not return in step.
            return min(retry_after, self.policy.max_retry_after) + random.uniform(0, self.policy.initial_delay)
        return self._backoff(state)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        logger.warning(
            "%s; retry %d of %d in %.1f s",
            error,
            state.attempt_number,
            self.policy.attempts - 1,
            wait,
            extra={"event": "retry", "attempt": state.attempt_number},
        )


class RateLimit:
    """At most `per_second` requests a second across all threads (None: no limit)."""

    def __init__(self, per_second: float | None = None) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError(f"a rate limit must be positive, not {per_second}")
        self._interval = 1.0 / per_second if per_second else 0.0
        self._next_slot = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(self._next_slot, now)
            self._next_slot = slot + self._interval
        if slot > now:
            time.sleep(slot - now)
