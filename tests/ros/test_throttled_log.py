"""ThrottledLog: a repeated log line at most once per period, with the count of the lines left out."""
from __future__ import annotations

import time

from inril_ros.runtime import ThrottledLog


def test_lines_within_the_period_are_counted_and_the_next_line_says_how_many() -> None:
    written: list[str] = []
    log = ThrottledLog(written.append, period_s=0.2)
    for i in range(5):
        log(f"line {i}")
    assert written == ["line 0"]
    time.sleep(0.25)
    log("line 5")
    assert written == ["line 0", "line 5 (4 more such lines left out since the last)"]
