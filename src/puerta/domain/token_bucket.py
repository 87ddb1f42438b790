"""A request budget as a token bucket that can also book tokens for moments just ahead.

The bucket holds at most ``burst`` tokens and gains ``rate`` per second; a request takes one.
Its state is the tokens it holds at one moment, ``at``. Besides taking a token now, a caller
may *book* one for a later moment (the CI runner books a round's requests, spaced over the
round, in the one transaction that claims their runs); ``at`` then lies in the future and
holds what is left after the last booking. Seen from before ``at``, the bucket holds what it
will hold then minus the refill still to come, which may be less than zero: tokens taken now
must not leave any booking short. Any stretch of T seconds therefore grants at most
``burst + T * rate`` tokens, booked or taken, whichever replica's clock is behind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: int  # capacity
    tokens: float  # held at ``at``, after every booking up to then
    at: datetime

    def available(self, now: datetime) -> float:
        """Tokens that may be taken at ``now`` without leaving any booking short."""
        return min(float(self.burst), self.tokens + (now - self.at).total_seconds() * self.rate)

    def take(self, now: datetime) -> TokenBucket | None:
        """The bucket after one token is taken at ``now``; None when it has none to give."""
        if self.available(now) < 1.0:
            return None
        if now >= self.at:
            return replace(self, tokens=self.available(now) - 1.0, at=now)
        return replace(self, tokens=self.tokens - 1.0)  # bookings lie ahead: one fewer then

    def wait(self, now: datetime) -> float:
        """Seconds from ``now`` until a token may be taken (0.0 when one may now)."""
        return max(0.0, (1.0 - self.available(now)) / self.rate)

    def book(self, earliest: datetime) -> tuple[datetime, TokenBucket]:
        """Book a token for the first moment from ``earliest`` (and from the last booking) on
        at which the bucket has one; returns that moment and the bucket after the booking."""
        moment = max(earliest, self.at)
        # whole microseconds (what a datetime holds), rounded up: never a token too soon
        moment += timedelta(microseconds=math.ceil(self.wait(moment) * 1e6))
        return moment, replace(self, tokens=self.available(moment) - 1.0, at=moment)
