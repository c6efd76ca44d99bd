"""NCRONTAB schedules of timer-triggered functions, for the local host (``{second} {minute} {hour} {day} {month}
{day-of-week}``, as the Functions host reads them), so that timers run locally as they run in Azure.

Supported per field: ``*``, a number, ``a-b``, ``*/n`` and ``a-b/n``, and lists of those separated by commas.
Month and weekday names, and the TimeSpan form (``00:05:00``), are refused with a clear error: no timer of this
app uses them. Day and weekday must both match (the Functions host, like cron, allows either when both are
restricted; nobody restricts both here).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_LOOKAHEAD = timedelta(days=366 * 5)


@dataclass(frozen=True)
class Schedule:
    """The allowed values of each field."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday, as in NCRONTAB."""

    @classmethod
    def parse(cls, expression: str) -> "Schedule":
        fields = expression.split()
        if len(fields) != len(_RANGES):
            raise ValueError(f"NCRONTAB {expression!r}: six fields expected (second minute hour day month weekday)")
        return cls(*(_field(text, low, high, expression) for text, (low, high) in zip(fields, _RANGES, strict=True)))

    def next_after(self, moment: datetime) -> datetime:
        """The first whole second after ``moment`` that the schedule names."""
        at = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = at + _LOOKAHEAD
        while at < limit:
            if at.month not in self.months:
                at = (at.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
            elif at.day not in self.days or (at.weekday() + 1) % 7 not in self.weekdays:
                at = at.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif at.hour not in self.hours:
                at = at.replace(minute=0, second=0) + timedelta(hours=1)
            elif at.minute not in self.minutes:
                at = at.replace(second=0) + timedelta(minutes=1)
            elif at.second not in self.seconds:
                at += timedelta(seconds=1)
            else:
                return at
        raise ValueError("the schedule never fires")


def _field(text: str, low: int, high: int, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if span == "*":
                start, end = low, high
            elif "-" in span:
                start, end = (int(bound) for bound in span.split("-", 1))
            else:
                start = end = int(span)
        except ValueError:
            raise ValueError(f"NCRONTAB {expression!r}: {part!r} is not a number, range or step") from None
        if step < 1 or not low <= start <= end <= high:
            raise ValueError(f"NCRONTAB {expression!r}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)
