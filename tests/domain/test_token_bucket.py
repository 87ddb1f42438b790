"""The request budget's bucket: tokens taken now and booked ahead never exceed what the
budget grants in any stretch of time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from puerta.domain.token_bucket import TokenBucket

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_full_bucket_grants_its_burst_then_one_token_per_refill() -> None:
    bucket: TokenBucket | None = TokenBucket(rate=2.0, burst=3, tokens=3.0, at=T0)
    for _ in range(3):
        assert bucket is not None
        bucket = bucket.take(T0)
    assert bucket is not None
    assert bucket.take(T0) is None
    assert bucket.wait(T0) == 0.5
    assert bucket.take(at(0.5)) is not None


def test_bookings_are_spaced_at_the_rate_once_the_burst_is_used() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, tokens=2.0, at=T0)
    moments = []
    for _ in range(5):
        moment, bucket = bucket.book(T0)
        moments.append(round((moment - T0).total_seconds(), 6))
    assert moments == [0.0, 0.0, 0.1, 0.2, 0.3]


def test_a_booking_keeps_to_the_earliest_moment_asked_for() -> None:
    bucket = TokenBucket(rate=10.0, burst=20, tokens=20.0, at=T0)
    moment, bucket = bucket.book(at(0.4))
    assert moment == at(0.4)
    later, _ = bucket.book(at(0.2))  # never before the last booking
    assert later == at(0.4)


def test_tokens_booked_ahead_are_not_there_to_take_now() -> None:
    """Ten tokens booked over the next second leave none to take now, though the bucket
    will hold them by then; an hour later it is full again."""
    bucket = TokenBucket(rate=10.0, burst=10, tokens=10.0, at=T0)
    for i in range(20):
        _, bucket = bucket.book(at(i * 0.1))
    assert bucket.at == at(1.9)
    assert bucket.take(T0) is None
    assert bucket.wait(T0) > 1.0
    assert bucket.available(at(3600)) == 10.0


def test_a_lagging_clock_sees_fewer_tokens_not_more() -> None:
    bucket = TokenBucket(rate=1.0, burst=5, tokens=5.0, at=at(10))  # written by a clock ahead
    assert bucket.available(at(8)) == 3.0
    taken = bucket.take(at(8))
    assert taken is not None and taken.at == at(10) and taken.tokens == 4.0


operations = st.lists(
    st.tuples(
        st.sampled_from(["take", "book"]),
        st.floats(min_value=0.0, max_value=0.5),  # seconds the caller's clock moved on
        st.floats(min_value=-0.3, max_value=1.0),  # book: how far ahead of that clock
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=operations,
    rate=st.sampled_from([0.5, 2.0, 10.0]),
    burst=st.integers(min_value=1, max_value=6),
)
def test_no_stretch_of_time_is_granted_more_than_burst_plus_refill(
    ops: list[tuple[str, float, float]], rate: float, burst: int
) -> None:
    """Whatever mix of takes and bookings, in any order of moments: the tokens granted for
    moments within any stretch of T seconds number at most ``burst + T * rate``."""
    bucket = TokenBucket(rate=rate, burst=burst, tokens=float(burst), at=T0)
    clock = 0.0
    granted: list[float] = []
    for kind, step, ahead in ops:
        clock += step
        if kind == "take":
            now = at(clock)
            taken = bucket.take(now)
            if taken is not None:
                bucket = taken
                granted.append((now - T0).total_seconds())
        else:
            moment, bucket = bucket.book(at(clock + ahead))
            granted.append((moment - T0).total_seconds())
    granted.sort()
    for i, start in enumerate(granted):
        for j in range(i, len(granted)):
            span = granted[j] - start
            assert j - i + 1 <= burst + span * rate + 1e-6, (granted[i : j + 1], rate, burst)
