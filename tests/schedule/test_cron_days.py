"""Cron day-of-month and day-of-week together: Airflow's (croniter's) rule, not cronsim's.

Each expected fire list below was written out by hand from the 2026 calendar, by croniter's
rule: when both day fields are restricted, a day matches if it matches either one; a field is
unrestricted when it is ``*`` or ``?``, or names every value while the other field has a ``*``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cronsim import CronSim

from cadenza.exceptions import InvalidOptionError
from cadenza.schedule import CronSchedule, Interval, next_fire_times

NY = "America/New_York"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def fires(expr: str, after: str, count: int) -> list[str]:
    """The next ``count`` fire times of ``expr`` in UTC after ``after``, as "MM-DD HH:MM"."""
    got = next_fire_times(CronSchedule(expr), at(after), count)
    return [f"{i.end:%m-%d %H:%M}" for i in got]


def days(*dates: str, time: str = "00:00") -> list[str]:
    return [f"{date} {time}" for date in dates]


# May 2026 starts on a Friday; its Saturdays are 2, 9, 16, 23, 30. June 1 is a Monday.
TABLE = [
    # Both restricted: odd days OR Saturdays (cronsim alone: odd Saturdays, 05-09 and 05-23).
    ("0 16 */2 * sat", "2026-05-01T00:00+00:00", days(
        "05-01", "05-02", "05-03", "05-05", "05-07", "05-09", "05-11", "05-13", "05-15",
        "05-16", "05-17", "05-19", "05-21", "05-23", "05-25", "05-27", "05-29", "05-30",
        "05-31", "06-01", "06-03", "06-05", "06-06", "06-07", time="16:00")),
    # The classic: the 13th OR Fridays (January 13 is a Tuesday; February 13 is both).
    ("0 0 13 * fri", "2026-01-01T00:00+00:00", days(
        "01-02", "01-09", "01-13", "01-16", "01-23", "01-30", "02-06", "02-13", "02-20")),
    # The 1st and 15th (Mondays in June 2026) OR Sunday, Tuesday, Thursday, Saturday.
    ("0 0 1,15 * */2", "2026-05-31T00:00+00:00", days(
        "06-01", "06-02", "06-04", "06-06", "06-07", "06-09", "06-11", "06-13", "06-14",
        "06-15", "06-16", "06-18")),
    # The last day of the month OR Sunday, Wednesday, Saturday (April 30 is a Thursday).
    ("0 0 L * */3", "2026-04-25T00:00+00:00", days(
        "04-26", "04-29", "04-30", "05-02", "05-03", "05-06")),
    # OR needs only one side to exist: no February 30th, but February's even weekdays fire.
    ("0 0 30 2 */2", "2026-01-01T00:00+00:00", days(
        "02-01", "02-03", "02-05", "02-07", "02-08", "02-10")),
    ("0 0 31 4,6 mon", "2026-01-01T00:00+00:00", days(
        "04-06", "04-13", "04-20", "04-27", "06-01", "06-08")),
    # One field '*' (or '?'): a day must match the other, as in every cron.
    ("0 0 * * sat", "2026-01-01T00:00+00:00", days("01-03", "01-10", "01-17")),
    ("0 0 13 * *", "2026-01-01T00:00+00:00", days("01-13", "02-13", "03-13")),
    ("0 0 ? * mon", "2026-01-01T00:00+00:00", days("01-05", "01-12", "01-19")),
    ("0 0 15 * ?", "2026-01-01T00:00+00:00", days("01-15", "02-15", "03-15")),
    ("0 0 1,* * mon", "2026-01-01T00:00+00:00", days("01-05", "01-12", "01-19")),
    # A field naming every value counts as '*' when the other field has a '*' in it ...
    ("0 0 */2 * 0-6", "2026-01-28T00:00+00:00", days(
        "01-29", "01-31", "02-01", "02-03", "02-05")),
    ("0 0 */2 * */1", "2026-01-28T00:00+00:00", days("01-29", "01-31", "02-01", "02-03")),
    ("0 0 1-31 * */2", "2026-01-01T00:00+00:00", days("01-03", "01-04", "01-06", "01-08")),
    # ... and is an ordinary restricted field otherwise, so OR makes every day match.
    ("0 0 */1 * sat", "2026-01-01T00:00+00:00", days("01-02", "01-03", "01-04", "01-05")),
    ("0 0 1-31 * sat", "2026-01-01T00:00+00:00", days("01-02", "01-03", "01-04", "01-05")),
    ("0 0 1 * 0-6", "2026-01-01T00:00+00:00", days("01-02", "01-03", "01-04", "01-05")),
    # cronsim's L and # forms follow the same OR rule. (croniter writes the last Friday as
    # L5 and, with a restricted day-of-month, drops that side or fails to find a date.)
    ("0 0 */10 * 5L", "2026-01-01T00:00+00:00", days(
        "01-11", "01-21", "01-30", "01-31", "02-01", "02-11", "02-21", "02-27", "03-01")),
    ("0 0 1 * MON#1", "2026-01-01T00:00+00:00", days("01-05", "02-01", "02-02", "03-01", "03-02")),
]


@pytest.mark.parametrize(("expr", "after", "expected"), TABLE)
def test_day_fields_follow_airflow(expr: str, after: str, expected: list[str]) -> None:
    assert fires(expr, after, len(expected)) == expected


def test_cronsim_alone_would_fire_on_odd_saturdays_only() -> None:
    raw = CronSim("0 16 */2 * sat", datetime(2026, 5, 1))
    assert [f"{next(raw):%m-%d}" for _ in range(4)] == ["05-09", "05-23", "06-13", "06-27"]


def test_intervals_run_from_one_matching_day_to_the_next() -> None:
    schedule = CronSchedule("0 16 */2 * sat")
    got = schedule.intervals_between("2026-05-29", "2026-06-02")
    assert [(f"{i.start:%m-%d}", f"{i.end:%m-%d}") for i in got] == [
        ("05-29", "05-30"), ("05-30", "05-31"), ("05-31", "06-01"),
    ]
    # Backwards too: the interval holding a moment starts at the fire time before it.
    assert schedule.next_after(at("2026-05-16T15:00+00:00")) == Interval(
        at("2026-05-15T16:00+00:00"), at("2026-05-16T16:00+00:00"))
    assert schedule.next_after(at("2026-05-16T17:00+00:00")) == Interval(
        at("2026-05-16T16:00+00:00"), at("2026-05-17T16:00+00:00"))


@pytest.mark.parametrize(("expr", "after", "expected"), [
    # 2026-03-08 is a Sunday (even): it fires through the Sunday side, at the gap's end.
    ("30 2 */2 * sun", "2026-03-05T12:00-05:00", [
        ("2026-03-05T02:30-05:00", "2026-03-07T02:30-05:00", 48),
        ("2026-03-07T02:30-05:00", "2026-03-08T03:00-04:00", 23.5),
        ("2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00", 23.5),
    ]),
    # 2026-11-01 is a Sunday and odd: it fires once, on the first 01:30; November 2 is neither.
    ("30 1 */2 * sun", "2026-10-30T12:00-04:00", [
        ("2026-10-29T01:30-04:00", "2026-10-31T01:30-04:00", 48),
        ("2026-10-31T01:30-04:00", "2026-11-01T01:30-04:00", 24),
        ("2026-11-01T01:30-04:00", "2026-11-03T01:30-05:00", 49),
    ]),
])
def test_either_day_keeps_the_dst_policy(
    expr: str, after: str, expected: list[tuple[str, str, float]]
) -> None:
    got = next_fire_times(CronSchedule(expr, NY), at(after), len(expected))
    assert [
        (i.local_start.isoformat(timespec="minutes"), i.local_end.isoformat(timespec="minutes"),
         i.duration.total_seconds() / 3600)
        for i in got
    ] == expected


@pytest.mark.parametrize(("expr", "words"), [
    ("0 16 */2 * sat", "at 16:00 on every second day of month or on Saturday (UTC)"),
    ("0 0 13 * fri", "at 00:00 on the 13th day of month or on Friday (UTC)"),
    ("0 0 */1 * sat", "at 00:00 every day (UTC)"),
    ("0 0 */2 * 0-6", "at 00:00 on every second day of month (UTC)"),
    ("0 0 * * sat", "at 00:00 on Saturday (UTC)"),
])
def test_the_description_says_which_days(expr: str, words: str) -> None:
    assert CronSchedule(expr).description == words


def test_the_expression_is_kept_as_written() -> None:
    assert CronSchedule("0 16 */2 * sat").cron == "0 16 */2 * sat"
    assert CronSchedule("@weekly").cron == "0 0 * * 0"


@pytest.mark.parametrize(("expr", "fix"), [
    ("0 16 */0 * sat", "the day-of-month field '*/0' is wrong"),
    ("0 16 */2 * sat/0", "the day-of-week field 'sat/0' is wrong"),
    ("0 0 ?5 * *", "the day-of-month field '?5' is wrong"),
    ("0 0 1 * ?,mon", "the day-of-week field '?,mon' is wrong"),
])
def test_bad_day_fields_are_named_as_written(expr: str, fix: str) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        CronSchedule(expr)
    assert excinfo.value.value == expr
    assert repr(expr) in str(excinfo.value)
    assert fix in str(excinfo.value)


def test_a_start_between_matching_days_begins_at_the_next_one() -> None:
    schedule = CronSchedule("0 16 */2 * sat", start="2026-05-03T17:00")
    first = schedule.next_after(datetime(2026, 5, 1, tzinfo=UTC))
    assert first == Interval(at("2026-05-05T16:00+00:00"), at("2026-05-07T16:00+00:00"))
