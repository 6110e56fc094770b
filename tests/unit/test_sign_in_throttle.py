"""The console's sign-in throttle, on a clock the test moves."""

from __future__ import annotations

from storebridge.admin.throttle import SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_once_it_reaches_the_limit_until_its_oldest_failure_ages_out() -> None:
    clock = Clock()
    throttle = SignInThrottle(limit=3, window=60, clock=clock)
    for _ in range(3):
        assert throttle.wait_for("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
        clock.now += 10
    # Failures at 1000, 1010, 1020; now 1030: the first ages out at 1060.
    assert throttle.wait_for("10.0.0.1") == 30
    assert throttle.wait_for("10.0.0.2") == 0
    clock.now = 1060.5
    assert throttle.wait_for("10.0.0.1") == 0  # two failures left in the window: one more try


def test_a_right_token_clears_the_count() -> None:
    clock = Clock()
    throttle = SignInThrottle(limit=2, window=60, clock=clock)
    throttle.failed("a")
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.wait_for("a") == 0


def test_the_addresses_kept_are_bounded() -> None:
    clock = Clock()
    throttle = SignInThrottle(limit=2, window=60, max_addresses=100, clock=clock)
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle._failures) <= 100
    # The newest addresses are still counted.
    throttle.failed("10.0.3.231")
    assert throttle.wait_for("10.0.3.231") > 0
