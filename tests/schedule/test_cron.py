"""Cron and interval schedules: data intervals, the DST policy, bounds, words and bad input."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from cadenza.exceptions import InvalidOptionError
from cadenza.schedule import (
    CronSchedule,
    Interval,
    IntervalSchedule,
    Schedule,
    describe_dst,
    next_fire_times,
    parse_schedule,
)

NY, LON = "America/New_York", "Europe/London"
HOUR = timedelta(hours=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def make(spec: str, tz: str, **bounds: object) -> Schedule:
    """``"every 1h"`` is an IntervalSchedule, anything else a CronSchedule."""
    if spec.startswith("every "):
        return IntervalSchedule(spec.removeprefix("every "), tz, **bounds)  # type: ignore[arg-type]
    return CronSchedule(spec, tz, **bounds)  # type: ignore[arg-type]


def local(interval: Interval) -> tuple[str, str, float]:
    return (
        interval.local_start.isoformat(timespec="minutes"),
        interval.local_end.isoformat(timespec="minutes"),
        interval.duration / HOUR,
    )


# --- the DST policy: daily jobs in the missing and the repeated hour -------------------------

DAILY = [
    # US spring forward, 2026-03-08 02:00 EST -> 03:00 EDT: 02:30 does not exist, fires at 03:00.
    (NY, "30 2 * * *", "2026-03-07T00:00-05:00", [
        ("2026-03-06T02:30-05:00", "2026-03-07T02:30-05:00", 24),
        ("2026-03-07T02:30-05:00", "2026-03-08T03:00-04:00", 23.5),
        ("2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00", 23.5),
    ]),
    (NY, "30 1 * * *", "2026-03-07T00:00-05:00", [
        ("2026-03-06T01:30-05:00", "2026-03-07T01:30-05:00", 24),
        ("2026-03-07T01:30-05:00", "2026-03-08T01:30-05:00", 24),
        ("2026-03-08T01:30-05:00", "2026-03-09T01:30-04:00", 23),
    ]),
    (NY, "@daily", "2026-03-07T12:00-05:00", [
        ("2026-03-07T00:00-05:00", "2026-03-08T00:00-05:00", 24),
        ("2026-03-08T00:00-05:00", "2026-03-09T00:00-04:00", 23),
    ]),
    # US fall back, 2026-11-01 02:00 EDT -> 01:00 EST: 01:00-02:00 happens twice.
    (NY, "30 1 * * *", "2026-10-31T00:00-04:00", [
        ("2026-10-30T01:30-04:00", "2026-10-31T01:30-04:00", 24),
        ("2026-10-31T01:30-04:00", "2026-11-01T01:30-04:00", 24),
        ("2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00", 25),
    ]),
    (NY, "30 2 * * *", "2026-10-31T00:00-04:00", [
        ("2026-10-30T02:30-04:00", "2026-10-31T02:30-04:00", 24),
        ("2026-10-31T02:30-04:00", "2026-11-01T02:30-05:00", 25),
        ("2026-11-01T02:30-05:00", "2026-11-02T02:30-05:00", 24),
    ]),
    (NY, "@daily", "2026-10-31T12:00-04:00", [
        ("2026-10-31T00:00-04:00", "2026-11-01T00:00-04:00", 24),
        ("2026-11-01T00:00-04:00", "2026-11-02T00:00-05:00", 25),
    ]),
    # UK spring forward, 2026-03-29 01:00 GMT -> 02:00 BST: 01:30 does not exist, fires at 02:00.
    (LON, "30 1 * * *", "2026-03-28T00:00+00:00", [
        ("2026-03-27T01:30+00:00", "2026-03-28T01:30+00:00", 24),
        ("2026-03-28T01:30+00:00", "2026-03-29T02:00+01:00", 23.5),
        ("2026-03-29T02:00+01:00", "2026-03-30T01:30+01:00", 23.5),
    ]),
    (LON, "30 2 * * *", "2026-03-28T00:00+00:00", [
        ("2026-03-27T02:30+00:00", "2026-03-28T02:30+00:00", 24),
        ("2026-03-28T02:30+00:00", "2026-03-29T02:30+01:00", 23),
        ("2026-03-29T02:30+01:00", "2026-03-30T02:30+01:00", 24),
    ]),
    # UK fall back, 2026-10-25 02:00 BST -> 01:00 GMT: 01:00-02:00 happens twice.
    (LON, "30 1 * * *", "2026-10-24T00:00+01:00", [
        ("2026-10-23T01:30+01:00", "2026-10-24T01:30+01:00", 24),
        ("2026-10-24T01:30+01:00", "2026-10-25T01:30+01:00", 24),
        ("2026-10-25T01:30+01:00", "2026-10-26T01:30+00:00", 25),
    ]),
    (LON, "30 2 * * *", "2026-10-24T00:00+01:00", [
        ("2026-10-23T02:30+01:00", "2026-10-24T02:30+01:00", 24),
        ("2026-10-24T02:30+01:00", "2026-10-25T02:30+00:00", 25),
        ("2026-10-25T02:30+00:00", "2026-10-26T02:30+00:00", 24),
    ]),
]


@pytest.mark.parametrize(("tz", "expr", "after", "expected"), DAILY)
def test_daily_jobs_across_dst(
    tz: str, expr: str, after: str, expected: list[tuple[str, str, float]]
) -> None:
    schedule = CronSchedule(expr, tz)
    got = next_fire_times(schedule, at(after), len(expected))
    assert [local(i) for i in got] == expected
    assert [local(i) for i in schedule.intervals_between(got[0].start, got[-1].end)] == expected


# --- hourly schedules: one run per real hour, no duplicates, no gaps -------------------------

HOURLY = [
    (NY, "@hourly", "2026-03-08T00:00-05:00", "2026-03-08T05:00-04:00",
     ["01:00-05:00", "03:00-04:00", "04:00-04:00", "05:00-04:00"]),
    (NY, "30 * * * *", "2026-03-08T00:00-05:00", "2026-03-08T05:00-04:00",
     ["01:30-05:00", "03:30-04:00", "04:30-04:00"]),
    (NY, "every 1h", "2026-03-08T00:00-05:00", "2026-03-08T05:00-04:00",
     ["01:00-05:00", "03:00-04:00", "04:00-04:00", "05:00-04:00"]),
    (NY, "@hourly", "2026-11-01T00:00-04:00", "2026-11-01T03:00-05:00",
     ["01:00-04:00", "01:00-05:00", "02:00-05:00", "03:00-05:00"]),
    (NY, "0 0-23 * * *", "2026-11-01T00:00-04:00", "2026-11-01T03:00-05:00",
     ["01:00-04:00", "01:00-05:00", "02:00-05:00", "03:00-05:00"]),
    (NY, "every 1h", "2026-11-01T00:00-04:00", "2026-11-01T03:00-05:00",
     ["01:00-04:00", "01:00-05:00", "02:00-05:00", "03:00-05:00"]),
    (LON, "@hourly", "2026-03-29T00:00+00:00", "2026-03-29T04:00+01:00",
     ["02:00+01:00", "03:00+01:00", "04:00+01:00"]),
    (LON, "every 1h", "2026-03-29T00:00+00:00", "2026-03-29T04:00+01:00",
     ["02:00+01:00", "03:00+01:00", "04:00+01:00"]),
    (LON, "@hourly", "2026-10-25T00:00+01:00", "2026-10-25T03:00+00:00",
     ["01:00+01:00", "01:00+00:00", "02:00+00:00", "03:00+00:00"]),
    (LON, "every 1h", "2026-10-25T00:00+01:00", "2026-10-25T03:00+00:00",
     ["01:00+01:00", "01:00+00:00", "02:00+00:00", "03:00+00:00"]),
]


@pytest.mark.parametrize(("tz", "spec", "start", "end", "ends"), HOURLY)
def test_hourly_jobs_across_dst(tz: str, spec: str, start: str, end: str, ends: list[str]) -> None:
    got = make(spec, tz).intervals_between(at(start), at(end))
    day = start[:11]
    assert [i.local_end.isoformat(timespec="minutes") for i in got] == [day + e for e in ends]
    assert all(i.duration == HOUR for i in got)


@pytest.mark.parametrize("spec", ["@hourly", "30 * * * *", "*/15 * * * *", "0 0-23 * * *",
                                  "every 1h", "every 15m"])
@pytest.mark.parametrize(("tz", "night"), [
    (NY, "2026-03-08"), (NY, "2026-11-01"), (LON, "2026-03-29"), (LON, "2026-10-25"),
])
def test_every_real_hour_runs_exactly_once(spec: str, tz: str, night: str) -> None:
    zone = ZoneInfo(tz)
    day = date.fromisoformat(night)
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), zone)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
    got = make(spec, tz).intervals_between(start, end)
    step = got[0].duration
    assert step in (HOUR, timedelta(minutes=15))
    # Back to back, all one length, so every real hour has its runs once.
    assert [i.end for i in got] == [got[0].end + n * step for n in range(len(got))]
    assert all(i.duration == step for i in got)
    assert got[-1].end + step > end.astimezone(UTC) >= got[-1].end


def test_every_interval_has_a_fixed_length_whatever_the_clock_says() -> None:
    schedule = IntervalSchedule("1d", NY, start="2026-03-07")
    got = next_fire_times(schedule, at("2026-03-07T00:00-05:00"), 3)
    assert [local(i) for i in got] == [
        ("2026-03-07T00:00-05:00", "2026-03-08T00:00-05:00", 24),
        ("2026-03-08T00:00-05:00", "2026-03-09T01:00-04:00", 24),
        ("2026-03-09T01:00-04:00", "2026-03-10T01:00-04:00", 24),
    ]


# --- cadenza's policy where cronsim on its own does something else ---------------------------

def test_cronsim_fires_a_daily_0130_job_once_on_the_chicago_fall_back_night() -> None:
    # The claim behind choosing cronsim: croniter fires this twice on 2026-11-01.
    chicago = ZoneInfo("America/Chicago")
    fires = CronSim("30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=chicago))
    assert [next(fires).astimezone(UTC) for _ in range(2)] == [
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC), datetime(2026, 11, 2, 7, 30, tzinfo=UTC),
    ]
    schedule = CronSchedule("30 1 * * *", "America/Chicago")
    got = next_fire_times(schedule, at("2026-10-31T12:00-05:00"), 2)
    assert [i.end for i in got] == [
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC), datetime(2026, 11, 2, 7, 30, tzinfo=UTC),
    ]


def test_fixed_hours_in_the_gap_merge_into_one_run_where_cronsim_skips_the_day() -> None:
    fires = CronSim("*/15 2 * * *", datetime(2026, 3, 7, 12, tzinfo=ZoneInfo(NY)))
    assert next(fires).isoformat() == "2026-03-09T02:00:00-04:00"  # cronsim: 2026-03-08 skipped
    got = next_fire_times(CronSchedule("*/15 2 * * *", NY), at("2026-03-07T12:00-05:00"), 2)
    assert [local(i) for i in got] == [
        ("2026-03-07T02:45-05:00", "2026-03-08T03:00-04:00", 23.25),
        ("2026-03-08T03:00-04:00", "2026-03-09T02:00-04:00", 23),
    ]


def test_fixed_hours_in_the_repeated_hour_fire_on_the_first_pass_only() -> None:
    start, end = at("2026-11-01T00:00-04:00"), at("2026-11-01T12:00-05:00")
    raw = CronSim("*/15 1 * * *", start.astimezone(ZoneInfo(NY)))
    assert [next(raw).astimezone(UTC) < end for _ in range(9)] == [True] * 8 + [False]
    got = CronSchedule("*/15 1 * * *", NY).intervals_between(start, end)
    assert [i.local_end.isoformat(timespec="minutes") for i in got] == [
        "2026-11-01T01:15-04:00", "2026-11-01T01:30-04:00", "2026-11-01T01:45-04:00",
    ]


def test_hour_ranges_covering_the_day_count_as_hourly() -> None:
    # cronsim treats "0 0-23" as a fixed time and drops 01:00 EST; cadenza keeps it.
    raw = CronSim("0 0-23 * * *", at("2026-11-01T00:30-04:00").astimezone(ZoneInfo(NY)))
    assert [next(raw).isoformat() for _ in range(2)] == [
        "2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00",
    ]
    got = next_fire_times(CronSchedule("0 0-23 * * *", NY), at("2026-11-01T00:30-04:00"), 2)
    assert [i.local_end.isoformat(timespec="minutes") for i in got] == [
        "2026-11-01T01:00-04:00", "2026-11-01T01:00-05:00",
    ]


# --- next_after, intervals_between and their agreement --------------------------------------

NEXT_AFTER = [
    ("UTC", "*/10 * * * *", "2026-01-05T12:00+00:00",
     "2026-01-05T12:00+00:00", "2026-01-05T12:10+00:00"),
    ("UTC", "*/10 * * * *", "2026-01-05T12:05+00:00",
     "2026-01-05T12:00+00:00", "2026-01-05T12:10+00:00"),
    ("UTC", "*/10 * * * *", "2026-01-05T11:59:59.999999+00:00",
     "2026-01-05T11:50+00:00", "2026-01-05T12:00+00:00"),
    ("UTC", "@monthly", "2026-02-10T00:00+00:00",
     "2026-02-01T00:00+00:00", "2026-03-01T00:00+00:00"),
    ("UTC", "0 0 29 2 *", "2026-01-01T00:00+00:00",
     "2024-02-29T00:00+00:00", "2028-02-29T00:00+00:00"),
    # Moments in the second pass of the repeated hour.
    (NY, "50 1 * * *", "2026-11-01T01:40-05:00",
     "2026-11-01T01:50-04:00", "2026-11-02T01:50-05:00"),
    (NY, "*/20 * * * *", "2026-11-01T01:30-05:00",
     "2026-11-01T01:20-05:00", "2026-11-01T01:40-05:00"),
    (NY, "*/20 * * * *", "2026-11-01T01:30-04:00",
     "2026-11-01T01:20-04:00", "2026-11-01T01:40-04:00"),
    (NY, "30 2 * * *", "2026-03-08T03:00-04:00",
     "2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00"),
    (LON, "every 1h", "2026-10-25T01:30+00:00", "2026-10-25T01:00+00:00", "2026-10-25T02:00+00:00"),
]


@pytest.mark.parametrize(("tz", "spec", "moment", "start", "end"), NEXT_AFTER)
def test_next_after(tz: str, spec: str, moment: str, start: str, end: str) -> None:
    assert make(spec, tz).next_after(at(moment)) == Interval(at(start), at(end), tz)


def test_a_naive_moment_is_wall_time_in_the_schedules_zone() -> None:
    schedule = CronSchedule("30 2 * * *", NY)
    in_the_gap = schedule.next_after(datetime(2026, 3, 8, 2, 15))  # read as 03:00 EDT
    assert in_the_gap == schedule.next_after(at("2026-03-08T03:00-04:00"))


SPECS = ["@hourly", "*/20 * * * *", "30 1 * * *", "30 2 * * *", "0 */6 * * *", "* 1 * * *",
         "30 1 */2 * sat,sun", "every 45m"]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize(("tz", "night"), [
    (NY, "2026-03-08"), (NY, "2026-11-01"), (LON, "2026-03-29"), (LON, "2026-10-25"),
])
def test_next_after_and_intervals_between_agree(spec: str, tz: str, night: str) -> None:
    zone = ZoneInfo(tz)
    day = date.fromisoformat(night)
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), zone)
    end = datetime.combine(day + timedelta(days=2), datetime.min.time(), zone)
    listed = make(spec, tz).intervals_between(start, end)
    chained = next_fire_times(make(spec, tz), listed[0].start, len(listed) + 1)
    assert chained[: len(listed)] == listed
    for interval in listed:  # each moment inside an interval leads to it, on a fresh schedule
        for moment in (interval.start, interval.end - timedelta(microseconds=1)):
            assert make(spec, tz).next_after(moment) == interval


@pytest.mark.parametrize("spec", SPECS)
def test_next_after_reuses_nothing_that_changes_its_answer(spec: str) -> None:
    moments = [at("2026-10-31T22:00-04:00") + n * timedelta(minutes=7) for n in range(120)]
    moments += [at("2026-03-07T22:00-05:00") + n * timedelta(minutes=7) for n in range(120)]
    random.Random(3).shuffle(moments)
    warm = make(spec, NY)
    for moment in moments + sorted(moments):
        assert warm.next_after(moment) == make(spec, NY).next_after(moment)


def test_threads_can_share_a_schedule() -> None:
    # next_after goes on with the fire-time iterator of its last answer, so threads (web
    # requests beside the scheduler) asking one schedule must still each get the right answer.
    shared = CronSchedule("*/20 9-17 * * mon-fri", NY)
    moments = [at("2026-03-02T08:00-05:00") + n * timedelta(minutes=13) for n in range(600)]
    expected = [CronSchedule("*/20 9-17 * * mon-fri", NY).next_after(m) for m in moments]

    def walk(offset: int) -> list[Interval | None]:
        order = moments[offset:] + moments[:offset]
        got = [shared.next_after(m) for m in order]
        return got[-offset:] + got[:-offset] if offset else got

    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(walk, [0, 150, 300, 450]):
            assert got == expected


@pytest.mark.parametrize("expr", [
    "*/7 * * * *", "0 9-17 * * MON-FRI", "0 0 L * *", "0 0 * * 5L", "0 12 * * MON#2",
    "0 0 29 2 *", "5,35 */3 1-10 * *", "0 0 1 * SUN", "@weekly", "@yearly",
])
def test_in_utc_fire_times_are_cronsims(expr: str) -> None:
    fires = CronSim(CronSchedule(expr).cron, datetime(2026, 1, 1))
    expected = [next(fires).replace(tzinfo=UTC) for _ in range(30)]
    got = next_fire_times(CronSchedule(expr), datetime(2026, 1, 1, tzinfo=UTC), 30)
    assert [i.end for i in got] == expected
    assert [i.start for i in got[1:]] == expected[:-1]


# --- start and end -------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    date(2026, 3, 1), datetime(2026, 3, 1), "2026-03-01", " 2026-03-01T00:00 ",
    "2026-03-01T05:00+00:00", datetime(2026, 3, 1, 5, tzinfo=UTC), at("2026-03-01T00:00-05:00"),
])
def test_start_accepts_dates_datetimes_and_iso_text(value: object) -> None:
    assert CronSchedule("@daily", NY, start=value).start == datetime(2026, 3, 1, 5, tzinfo=UTC)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "utc"), [
    ("2026-03-08T02:30", datetime(2026, 3, 8, 7, tzinfo=UTC)),  # in the gap: its end
    ("2026-11-01T01:30", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # repeated: the first
])
def test_naive_bounds_follow_the_dst_policy(value: str, utc: datetime) -> None:
    assert IntervalSchedule("1h", NY, start=value).start == utc


@pytest.mark.parametrize("spec", ["@daily", "every 1d"])
def test_no_interval_before_start_or_after_end(spec: str) -> None:
    schedule = make(spec, "UTC", start="2026-01-10", end="2026-01-13")
    listed = schedule.intervals_between("2026-01-01", "2026-02-01")
    assert [(i.start.day, i.end.day) for i in listed] == [(10, 11), (11, 12), (12, 13)]
    assert next_fire_times(schedule, at("2025-12-01T00:00+00:00"), 9) == listed
    assert schedule.next_after(at("2026-01-12T12:00+00:00")) == Interval(
        at("2026-01-12T00:00+00:00"), at("2026-01-13T00:00+00:00"))
    assert schedule.next_after(at("2026-01-13T00:00+00:00")) is None


def test_a_cron_start_between_fire_times_begins_at_the_next_one() -> None:
    schedule = CronSchedule("@daily", start="2026-01-10T06:00")
    assert schedule.next_after(at("2026-01-01T00:00+00:00")) == Interval(
        at("2026-01-11T00:00+00:00"), at("2026-01-12T00:00+00:00"))
    assert schedule.intervals_between("2026-01-01", "2026-01-12")[0].start.day == 11


def test_an_interval_start_anchors_the_intervals() -> None:
    schedule = IntervalSchedule("1d", start="2026-01-10T06:00")
    assert schedule.next_after(at("2026-01-01T00:00+00:00")) == Interval(
        at("2026-01-10T06:00+00:00"), at("2026-01-11T06:00+00:00"))
    unanchored = IntervalSchedule("10m")  # anchored at the Unix epoch
    assert unanchored.next_after(at("2026-01-01T00:03+00:00")) == Interval(
        at("2026-01-01T00:00+00:00"), at("2026-01-01T00:10+00:00"))


def test_intervals_between_an_empty_or_short_range() -> None:
    assert CronSchedule("@daily").intervals_between("2026-01-01T01:00", "2026-01-01T23:00") == []
    assert IntervalSchedule("1d").intervals_between("2026-01-01", "2026-01-01") == []


# --- words ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("schedule", "words"), [
    (CronSchedule("*/10 * * * *"), "every 10 minutes (UTC)"),
    (CronSchedule("* * * * *"), "every minute (UTC)"),
    (CronSchedule("30 1 * * *", "America/Chicago"), "at 01:30 every day (America/Chicago)"),
    (CronSchedule("@hourly", LON), "at the start of every hour (Europe/London)"),
    (CronSchedule("*/7 * * * *"), "every seventh minute of every hour (UTC)"),
    (IntervalSchedule("10m"), "every 10 minutes"),
    (IntervalSchedule("1h"), "every hour"),
    (IntervalSchedule("1h30m"), "every 1 hour 30 minutes"),
    (IntervalSchedule("2d"), "every 2 days"),
    (IntervalSchedule(timedelta(seconds=90)), "every 1 minute 30 seconds"),
])
def test_description(schedule: Schedule, words: str) -> None:
    assert schedule.description == words
    assert words in repr(schedule)


@pytest.mark.parametrize(("spec", "tz", "after", "notes"), [
    ("@daily", NY, "2026-03-07T12:00-05:00", [
        None, "23h long: clocks go forward 1h at 02:00 on 2026-03-08 in America/New_York"]),
    ("@daily", NY, "2026-10-31T12:00-04:00", [
        None, "25h long: clocks go back 1h at 02:00 on 2026-11-01 in America/New_York"]),
    ("30 2 * * *", NY, "2026-03-07T12:00-05:00", [
        "23h30m long: clocks go forward 1h at 02:00 on 2026-03-08 in America/New_York; "
        "ends at 03:00 because 02:30 does not exist that night",
        "23h30m long: starts as clocks go forward 1h at 02:00 on 2026-03-08 in "
        "America/New_York; starts at 03:00 because 02:30 does not exist that night"]),
    ("30 1 * * *", NY, "2026-10-31T12:00-04:00", [
        "24h long: ends at the first of the two 01:30s that night",
        "25h long: clocks go back 1h at 02:00 on 2026-11-01 in America/New_York; "
        "starts at the first of the two 01:30s that night"]),
    ("every 1h", LON, "2026-10-25T00:30+01:00", [
        "1h long: ends at the first of the two 01:00s that night",
        "1h long: clocks go back 1h at 02:00 on 2026-10-25 in Europe/London; "
        "starts at the first of the two 01:00s that night; "
        "ends at the second of the two 01:00s that night",
        "1h long: starts as clocks go back 1h at 02:00 on 2026-10-25 in Europe/London; "
        "starts at the second of the two 01:00s that night",
        None]),
    ("@daily", "UTC", "2026-03-07T12:00+00:00", [None, None]),
    ("@daily", NY, "2026-06-07T12:00-04:00", [None, None]),
])
def test_describe_dst(spec: str, tz: str, after: str, notes: list[str | None]) -> None:
    schedule = make(spec, tz)
    got = next_fire_times(schedule, at(after), len(notes))
    assert [describe_dst(schedule, i) for i in got] == notes


def test_interval_values() -> None:
    interval = Interval(at("2026-03-08T00:00-05:00"), at("2026-03-09T00:00-04:00"), NY)
    assert interval.start == interval.logical_date == datetime(2026, 3, 8, 5, tzinfo=UTC)
    assert interval.start.tzinfo is UTC and interval.end.tzinfo is UTC
    assert interval.duration == timedelta(hours=23)
    assert interval.local_end.isoformat() == "2026-03-09T00:00:00-04:00"
    assert str(interval) == "[2026-03-08 00:00 EST, 2026-03-09 00:00 EDT)"


def test_next_fire_times_stops_at_the_end() -> None:
    schedule = CronSchedule("@daily", end="2026-01-03")
    assert len(next_fire_times(schedule, at("2026-01-01T00:00+00:00"), 10)) == 2
    assert next_fire_times(schedule, at("2026-01-01T00:00+00:00"), 0) == []


def test_parse_schedule() -> None:
    assert isinstance(parse_schedule("@daily", None, NY), CronSchedule)
    assert isinstance(parse_schedule(None, "10m", NY, "2026-01-01", None), IntervalSchedule)
    assert parse_schedule(None, None, NY) is None


# --- bad input -----------------------------------------------------------------------------

def cron(expr: object, tz: str = "UTC") -> object:
    return CronSchedule(expr, tz)  # type: ignore[arg-type]


BAD = [
    (lambda: cron("61 * * * *"), "schedule", "61 * * * *", "minute field '61'"),
    (lambda: cron("0 24 * * *"), "schedule", "0 24 * * *", "0-23"),
    (lambda: cron("* * *"), "schedule", "* * *", "has 3 fields, but needs 5"),
    (lambda: cron("0 0 * * * *"), "schedule", "0 0 * * * *", "has 6 fields"),
    (lambda: cron(""), "schedule", "", "has 0 fields"),
    (lambda: cron("@fortnightly"), "schedule", "@fortnightly", "@daily"),
    (lambda: cron("@dayly"), "schedule", "@dayly", "did you mean '@daily'?"),
    (lambda: cron("0 0 31 2 *"), "schedule", "0 0 31 2 *", "day that exists"),
    (lambda: cron("*/0 * * * *"), "schedule", "*/0 * * * *", "steps (*/10)"),
    (lambda: cron(7), "schedule", 7, "give text such as"),
    (lambda: cron("@daily", "Mars/Olympus"), "timezone", "Mars/Olympus", "IANA name"),
    (lambda: cron("@daily", "America/New_Yrok"), "timezone", "America/New_Yrok",
     "Did you mean 'America/New_York'?"),
    (lambda: cron("@daily", "europe/london"), "timezone", "europe/london", "'Europe/London'"),
    (lambda: cron("@daily", ""), "timezone", "", "IANA name"),
    (lambda: CronSchedule("@daily", start="2026-02-01", end="2026-01-01"), "end", "2026-01-01",
     "not after its start='2026-02-01'"),
    (lambda: IntervalSchedule("1h", start="2026-02-01", end="2026-02-01"), "end", "2026-02-01",
     "give an end later than the start"),
    (lambda: CronSchedule("@daily", start="tomorrow"), "start", "tomorrow", "'2026-03-08'"),
    (lambda: CronSchedule("@daily", end=3.5), "end", 3.5, "give a date"),  # type: ignore[arg-type]
    (lambda: IntervalSchedule("-5m"), "every", "-5m", "write it like '30s'"),
    (lambda: IntervalSchedule("soon"), "every", "soon", "write it like '30s'"),
    (lambda: IntervalSchedule("0s"), "every", "0s", "positive"),
    (lambda: IntervalSchedule("500ms"), "every", "500ms", "whole number of seconds"),
    (lambda: parse_schedule("@daily", "1d"), "every", "1d", "not both"),
    (lambda: parse_schedule(None, None, "UTC", "2026-01-01"), "start", "2026-01-01",
     "add schedule= or every="),
    (lambda: parse_schedule(None, None, "Mars/Olympus"), "timezone", "Mars/Olympus", "IANA"),
    (lambda: CronSchedule("@daily").intervals_between("2026-02-01", "2026-01-01"), "end",
     "2026-01-01", "swap them"),
    (lambda: next_fire_times(CronSchedule("@daily"), datetime.now(UTC), -1), "count", -1,
     "0 or more"),
    (lambda: Interval(datetime(2026, 1, 1), datetime(2026, 1, 2)), "start",
     datetime(2026, 1, 1), "timezone-aware"),
    (lambda: Interval(at("2026-01-02T00:00+00:00"), at("2026-01-01T00:00+00:00")), "end",
     at("2026-01-01T00:00+00:00"), "is not after its start"),
]


@pytest.mark.parametrize(("build", "option", "value", "fix"), BAD)
def test_bad_input_names_the_value_and_the_fix(
    build: object, option: str, value: object, fix: str
) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        build()  # type: ignore[operator]
    assert excinfo.value.option == option
    assert excinfo.value.value == value
    message = str(excinfo.value)
    assert repr(value) in message
    assert fix in message
