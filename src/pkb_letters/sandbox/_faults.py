"""Fault injection: the sandbox misbehaving the way a production API under load does.

Takes `Faults` (latency, a random 500/503 rate, a request-per-second limit answered with
429 and `Retry-After`, and a rate of connections dropped *after* the work was done) and
gives, per API request, what to do before and after answering. `Faults` also names the answer
variants the sandbox can serve besides its default shapes (the expiry key PKB's example uses, an
expiry no client can read, the undocumented `diagnostics` refusal part, a 401/403 for one patient's
`byNationalId`); the README's table says which PKB documents and which are our inference. Each decision is drawn
from the seed, the request itself and how many times that same request has been seen, so
a seeded run misbehaves identically however the client's threads happen to interleave.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

# A request as the faults see it: method, path and body. Hashed only when a fault is drawn for it.
Request = tuple[str, str, bytes]


@dataclass(frozen=True)
class Faults:
    latency_ms: int = 0
    fail_rate: float = 0.0
    rate_limit: float | None = None  # requests per second; None is unlimited
    drop_rate: float = 0.0
    seed: int | None = None
    fail_on: frozenset[str] = frozenset()  # identifiers that make any FHIR request holding them fail with 500
    # -- answer variants --
    expiry_key: str = "valueDateTime"  # or "valueDatetime" (PKB's example), "valueInstant", another, "" for none
    expiry_text: str | None = None  # sent instead of the real expiry (still logged as issued): unreadable ones
    refusal_diagnostics: bool = False  # refuse tokens with a `diagnostics` part instead of leaving patients out
    deny_lookup: tuple[tuple[str, int], ...] = ()  # (NHS number, 401 or 403) for byNationalId

    def __post_init__(self) -> None:
        object.__setattr__(self, "fail_on", frozenset(self.fail_on))
        denials = self.deny_lookup.items() if isinstance(self.deny_lookup, dict) else self.deny_lookup
        object.__setattr__(self, "deny_lookup", tuple(sorted((str(n), int(s)) for n, s in denials)))
        if any(status not in (401, 403) for _, status in self.deny_lookup):
            raise ValueError(f"deny_lookup statuses must be 401 or 403, not {self.deny_lookup}")
        for name in ("fail_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, not {self.latency_ms}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"rate_limit must be positive, not {self.rate_limit}")

    @property
    def any(self) -> bool:
        return bool(
            self.latency_ms
            or self.fail_rate
            or self.rate_limit
            or self.drop_rate
            or self.fail_on
            or self.expiry_key != "valueDateTime"
            or self.expiry_text is not None
            or self.refusal_diagnostics
            or self.deny_lookup
        )


@dataclass(frozen=True)
class Refusal:
    status: int  # 429, 500 or 503
    retry_after: int | None = None


class FaultInjector:
    """Decides, thread-safely and repeatably for a given seed, which requests misbehave."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._seed = faults.seed if faults.seed is not None else random.randrange(2**64)
        self._window_start = time.monotonic()
        self._window_count = 0
        self.counts = {"latency": 0, "429": 0, "500": 0, "503": 0, "dropped": 0}
        self.dropped_by_action: Counter[str] = Counter()

    def before(self, request: Request) -> Refusal | None:
        """Called as `request` arrives: delay it, and maybe refuse
        it without doing the work."""
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        with self._lock:
            if self._over_rate_limit():
                self.counts["429"] += 1
                return Refusal(429, retry_after=self._seconds_left_in_window())
            if not self.faults.fail_rate:
                return None
            draw = self._draw(request, "fail")
            if draw.random() < self.faults.fail_rate:
                status = draw.choice((500, 503))
                self.counts[str(status)] += 1
                return Refusal(status)
        return None

    def drop_after_work(self, request: Request, action: str) -> bool:
        """Called once the work for `request` (answered by `action`) is done: should the answer be
        lost on the way back?"""
        if not self.faults.drop_rate:
            return False
        with self._lock:
            dropped = self._draw(request, "drop").random() < self.faults.drop_rate
            if dropped:
                self.counts["dropped"] += 1
                self.dropped_by_action[action] += 1
        return dropped

    def _draw(self, request: Request, purpose: str) -> random.Random:
        """The random stream for this attempt at `request`: its nth arrival always draws the same."""
        method, path, body = request
        key = f"{purpose} {hashlib.sha256(f'{method} {path} '.encode() + body).hexdigest()}"
        attempt = self._seen[key] = self._seen.get(key, 0) + 1
        return random.Random(f"{self._seed} {key} {attempt}")

    def _over_rate_limit(self) -> bool:
        # A fixed one-second window, like many API gateways: simple, and strict enough that a
        # client which ignores Retry-After sees 429s.
        if self.faults.rate_limit is None:
            return False
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        return self._window_count > self.faults.rate_limit

    def _seconds_left_in_window(self) -> int:
        return max(1, math.ceil(1.0 - (time.monotonic() - self._window_start)))


class RequestStats:
    """What arrived and when: lets tests check a client's concurrency bound and rate limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[tuple[float, str]] = []  # (monotonic time, route action)

    def enter(self, action: str) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.arrivals.append((time.monotonic(), action))

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def count(self, action: str) -> int:
        with self._lock:
            return sum(1 for _, a in self.arrivals if a == action)
