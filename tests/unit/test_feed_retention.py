"""Resuming the pull feed from a position older than the retention is refused (410), never answered with the events
that happen to be left: the consumer would take a feed with holes for a complete one."""

import pytest

from scim.change_feed import check_resumable
from scim.errors import ScimError

NOW = 1_800_000_000.0
DAY = 86_400


def position(seconds_ago: float) -> str:
    return f"{int((NOW - seconds_ago) * 1_000_000):016d}0a1b2c3d"


@pytest.mark.parametrize("seconds_ago", [0, 3600, 7 * DAY - 2 * 3600])
def test_a_position_younger_than_the_retention_less_the_margin_is_read(seconds_ago: float):
    check_resumable(position(seconds_ago), 7.0, NOW)


@pytest.mark.parametrize("seconds_ago", [7 * DAY - 1800, 7 * DAY, 30 * DAY])
def test_a_position_within_the_margin_or_older_is_gone(seconds_ago: float):
    with pytest.raises(ScimError) as gone:
        check_resumable(position(seconds_ago), 7.0, NOW)
    assert gone.value.status == 410
    assert "SCIM_CHANGE_FEED_RETENTION_DAYS = 7" in gone.value.detail


def test_a_short_retention_keeps_half_of_itself_as_the_margin():
    check_resumable(position(400), 0.01, NOW)  # 864 s of retention: positions up to 432 s old are safe
    with pytest.raises(ScimError):
        check_resumable(position(500), 0.01, NOW)


def test_reading_from_the_start_is_always_allowed():
    check_resumable(None, 0.0, NOW)
