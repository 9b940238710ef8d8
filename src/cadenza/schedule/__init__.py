"""Scheduling: cron and interval schedules that turn time into data intervals for runs."""

from __future__ import annotations

from cadenza.schedule.cron import (
    ALIASES,
    CronSchedule,
    DateLike,
    Interval,
    IntervalSchedule,
    Schedule,
    describe_dst,
    get_zone,
    next_fire_times,
    parse_schedule,
)

__all__ = [
    "ALIASES",
    "CronSchedule",
    "DateLike",
    "Interval",
    "IntervalSchedule",
    "Schedule",
    "describe_dst",
    "get_zone",
    "next_fire_times",
    "parse_schedule",
]
