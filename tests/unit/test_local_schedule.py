"""The local host's NCRONTAB reading: timers fire locally when they would fire in Azure."""

from datetime import datetime

import pytest

from scim.local.schedule import Schedule


def test_every_minute_at_second_zero():
    schedule = Schedule.parse("0 * * * * *")
    assert schedule.next_after(datetime(2026, 11, 29, 10, 0, 0)) == datetime(2026, 11, 29, 10, 1, 0)
    assert schedule.next_after(datetime(2026, 11, 29, 10, 0, 59, 500)) == datetime(2026, 11, 29, 10, 1, 0)


def test_steps_ranges_and_lists():
    assert Schedule.parse("*/15 * * * * *").next_after(datetime(2026, 1, 1, 0, 0, 16)) == datetime(2026, 1, 1, 0, 0, 30)
    every_five = Schedule.parse("0 */5 9-17 * * 1-5")  # weekdays, office hours
    saturday = datetime(2026, 11, 28, 12, 0, 0)
    assert every_five.next_after(saturday) == datetime(2026, 11, 30, 9, 0, 0)  # Monday
    assert Schedule.parse("30 0 0 1 1,7 *").next_after(saturday) == datetime(2027, 1, 1, 0, 0, 30)


@pytest.mark.parametrize("bad", ["* * * * *", "0 * * * * MON", "61 * * * * *", "*/0 * * * * *", "00:05:00"])
def test_what_it_cannot_read_is_refused(bad):
    with pytest.raises(ValueError):
        Schedule.parse(bad)
