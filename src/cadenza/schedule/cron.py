"""Schedules: when a pipeline runs, as data intervals ``[start, end)`` that each fire at ``end``.

``CronSchedule`` (cron text, matched by cronsim) and ``IntervalSchedule`` (``every="10m"``) both
give ``Interval`` values the Airflow way: the run for ``[start, end)`` fires at ``end``, and its
``logical_date`` is ``start``. Intervals hold UTC instants and the schedule's time zone for display.

Days follow Airflow (croniter), not cronsim. When day-of-month and day-of-week are both
restricted, a day matches if it matches *either*: ``0 16 */2 * sat`` fires on odd days and on
Saturdays. A field counts as unrestricted when it is ``*`` (or ``?``), or when it names every
value and the other field has a ``*`` in it (croniter's reading of ``*/2 * 0-6``); then a day must
match the other field. cronsim ANDs as soon as either field *starts* with ``*``, so the fields are
rewritten (``*/2`` as ``1-31/2``) before cronsim sees them; only its public API is used.

DST policy. cronsim matches cron fields against the wall clock in the schedule's time zone. This
module then decides, whatever cronsim would do by itself, what a wall-clock time that happens zero
or two times means:

* A cron schedule with fixed hours (its hour field leaves out some hour: ``@daily``,
  ``30 2 * * *``, ``0 */6 * * *``) follows the wall clock.
  - Missing hour (spring forward): a fire time that does not exist fires once, at the first
    instant after the gap. It is never skipped: ``30 2 * * *`` fires at 03:00 EDT on 2026-03-08
    in America/New_York. Fire times that land on the same instant this way merge into one run.
  - Repeated hour (fall back): a fire time that happens twice fires once, at its first
    occurrence: ``30 1 * * *`` fires at 01:30 EDT on 2026-11-01, not again at 01:30 EST.
* A cron schedule that fires in every hour (hour field ``*``: ``@hourly``, ``*/10 * * * *``)
  follows real time, so each real hour gets its runs exactly once. The missing hour has no
  wall-clock times, so there is nothing to fire (the real hour goes on at 03:00); the
  repeated hour is two real hours, so it fires on both passes (01:00 EDT, then 01:00 EST).
* ``IntervalSchedule`` is fixed lengths of real time; DST does not touch it.

Interval lengths follow from the instants: a daily interval over a spring-forward night is 23 h
long, over a fall-back night 25 h. Python subtracts two datetimes in the *same* zone as wall
times, so all arithmetic here is done in UTC and ``Interval.duration`` is the one to trust.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
import zoneinfo
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from cadenza._durations import parse_duration
from cadenza.exceptions import InvalidOptionError

DateLike = date | datetime | str
"""A start or end: a date (its midnight), a datetime (naive means in the schedule's time zone),
or ISO text such as ``"2026-03-08"`` or ``"2026-03-08T02:30"``."""

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, on a day that exists in the chosen months"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = timedelta(0)
_TICK = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)
_UTC_KEYS = frozenset({"UTC", "Etc/UTC"})


@dataclass(frozen=True)
class Interval:
    """One run's data interval ``[start, end)``; the run fires at ``end``."""

    start: datetime
    """First instant of the interval, in UTC."""
    end: datetime
    """First instant after the interval, in UTC: when its run fires."""
    timezone: str = "UTC"
    """The schedule's IANA time zone, for display through ``local_start`` and ``local_end``."""

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise InvalidOptionError(
                    f"Interval {name}={value!r} must be a timezone-aware datetime; "
                    "add tzinfo=datetime.UTC or a ZoneInfo.",
                    option=name, value=value,
                )
            if value.tzinfo is not UTC:
                object.__setattr__(self, name, value.astimezone(UTC))
        if self.end <= self.start:
            raise InvalidOptionError(
                f"Interval end={self.end!r} is not after its start={self.start!r}.",
                option="end", value=self.end,
            )

    @property
    def logical_date(self) -> datetime:
        """The run's logical date: the interval's start, as in Airflow."""
        return self.start

    @property
    def duration(self) -> timedelta:
        """Real time from start to end (23 h for a daily interval over a spring-forward night)."""
        return self.end - self.start

    @property
    def local_start(self) -> datetime:
        """``start`` in the schedule's time zone, for display (subtract ``start``, not this)."""
        return self.start.astimezone(ZoneInfo(self.timezone))

    @property
    def local_end(self) -> datetime:
        """``end`` in the schedule's time zone, for display."""
        return self.end.astimezone(ZoneInfo(self.timezone))

    def __str__(self) -> str:
        return f"[{self.local_start:%Y-%m-%d %H:%M %Z}, {self.local_end:%Y-%m-%d %H:%M %Z})"


class Schedule(ABC):
    """When a pipeline runs: a series of data intervals, validated when it is built."""

    def __init__(self, timezone: str, start: DateLike | None, end: DateLike | None) -> None:
        self.timezone = timezone
        """The IANA time zone cron fields, naive datetimes and display use."""
        self.tzinfo = get_zone(timezone)
        self.start = None if start is None else _to_utc(start, self.tzinfo, "start")
        """No interval starts before this instant (UTC), if set."""
        self.end = None if end is None else _to_utc(end, self.tzinfo, "end")
        """No interval ends after this instant (UTC), if set."""
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise InvalidOptionError(
                f"Schedule end={end!r} is not after its start={start!r}; "
                "give an end later than the start, or leave the end out.",
                option="end", value=end,
            )

    @property
    @abstractmethod
    def description(self) -> str:
        """The schedule in words, e.g. ``"at 01:30 every day (America/Chicago)"``."""

    @abstractmethod
    def next_after(self, moment: datetime) -> Interval | None:
        """The first interval whose end is strictly after ``moment``, or None past the end."""

    @abstractmethod
    def intervals_between(self, start: DateLike, end: DateLike) -> list[Interval]:
        """Every interval with ``start <= interval.start`` and ``interval.end <= end``, in order."""

    def _moment(self, moment: datetime) -> datetime:
        if isinstance(moment, datetime) and moment.tzinfo is not None:
            return moment.astimezone(UTC)
        return _to_utc(moment, self.tzinfo, "moment")

    def bounds(self, start: DateLike, end: DateLike) -> tuple[datetime, datetime]:
        lo, hi = _to_utc(start, self.tzinfo, "start"), _to_utc(end, self.tzinfo, "end")
        if hi < lo:
            raise InvalidOptionError(
                f"The range ends ({end!r}) before it starts ({start!r}); swap them.",
                option="end", value=end,
            )
        if self.start is not None:
            lo = max(lo, self.start)
        if self.end is not None:
            hi = min(hi, self.end)
        return lo, hi

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class CronSchedule(Schedule):
    """Runs between consecutive fire times of a 5-field cron expression or an @-shortcut."""

    def __init__(
        self,
        expr: str,
        timezone: str = "UTC",
        start: DateLike | None = None,
        end: DateLike | None = None,
    ) -> None:
        super().__init__(timezone, start, end)
        self.expr = expr
        """The expression as given, e.g. ``"@daily"``."""
        self.cron, self._matched, self._template = _compile(expr)
        # The DST policy in the module docstring: fixed-hour schedules follow the wall clock,
        # schedules that fire in every hour follow real time.
        self._every_hour = _every_hour(self._matched.split()[1])
        self._utc = self.tzinfo.key in _UTC_KEYS
        self._last: Interval | None = None  # next_after's last answer
        self._ahead: Iterator[datetime] | None = None
        """The fire-time iterator that found ``_last.end``, to go on from (its next value is
        what ``_fires(_last.end)`` would give first, without parsing again)."""
        self._lock = threading.Lock()  # an iterator must not run in two threads at once
        self._step = _minute_step(self._matched, self.tzinfo)
        """Seconds between fires for ``*/k * * * *`` when the zone's offsets keep it aligned
        to real time: then fire times are arithmetic, no cron walk needed."""

    @property
    def description(self) -> str:
        step = re.fullmatch(r"\*/(\d+) \* \* \* \*", self._matched)
        if step and 60 % int(step[1]) == 0:
            words = "every minute" if step[1] == "1" else f"every {int(step[1])} minutes"
        else:
            words = self._template.explain()
            words = words[:1].lower() + words[1:]
            _, _, dom, _, dow = self._matched.split()
            if not dom.startswith("*") and not dow.startswith("*"):
                # cronsim joins the two day fields with "and", which reads like "odd Saturdays".
                words = words.replace(" and on ", " or on ", 1)
        return f"{words} ({self.timezone})"

    def next_after(self, moment: datetime) -> Interval | None:
        after = self._moment(moment)
        last = self._last
        if last is not None and last.start <= after:
            # The answer is a pure function of `moment`, the same for every moment inside it, so
            # the last one can be reused without going stale; and a scheduler's next question is
            # usually about the interval right after it, which needs one step, not two.
            if after < last.end:
                return last
            fires = self._take_ahead(last) or self._fires(last.end)
            end = next(fires, None)
            if end is not None and end > after:
                return self._interval(last.end, end, fires)
        fires = self._fires(after)
        end = next(fires, None)
        if end is None:
            return None
        start = next(self._fires(end, reverse=True), None)
        if start is None or (self.start is not None and start < self.start):
            # That interval began before the schedule starts (or nothing fired before it):
            # the first interval begins at the first fire time at or after the start.
            fires = self._fires((self.start or end) - _TICK)
            start, end = next(fires, None), next(fires, None)
            if start is None or end is None:
                return None
        return self._interval(start, end, fires)

    def _interval(
        self, start: datetime, end: datetime, fires: Iterator[datetime]
    ) -> Interval | None:
        """Remember and return ``[start, end)``; ``fires`` has just yielded ``end``."""
        if self.end is not None and end > self.end:
            return None
        interval = Interval(start, end, self.timezone)
        with self._lock:
            self._last, self._ahead = interval, fires
        return interval

    def _take_ahead(self, last: Interval) -> Iterator[datetime] | None:
        """The iterator that found ``last.end``, taken so that no other thread runs it too."""
        with self._lock:
            if self._last is not last:
                return None
            fires, self._ahead = self._ahead, None
            return fires

    def intervals_between(self, start: DateLike, end: DateLike) -> list[Interval]:
        lo, hi = self.bounds(start, end)
        out: list[Interval] = []
        fires = self._fires(lo - _TICK)
        begin = next(fires, None)
        if begin is None or begin >= hi:
            return out
        for fire in fires:
            if fire > hi:
                break
            out.append(Interval(begin, fire, self.timezone))
            begin = fire
        return out

    def _fires(self, bound: datetime, *, reverse: bool = False) -> Iterator[datetime]:
        """Fire instants (UTC) strictly after ``bound``, earliest first; with ``reverse``,
        strictly before it, latest first. cronsim steps through naive wall-clock times and
        each is turned into instants here, by the DST policy in the module docstring."""
        if self._step is not None:
            yield from _steps(bound, self._step, reverse)
            return
        wall = self._wall(bound)
        if self._utc:  # no DST: cronsim's wall-clock times are the instants
            for same in self._walls(wall, reverse):
                yield same.replace(tzinfo=UTC)
            return
        tz = self.tzinfo
        fold = _fold(wall, tz)
        if fold > _ZERO:  # `bound` is in a repeated hour: fires on the wall clock's far side
            wall += fold if reverse else -fold  # of it may still be on the near side in time
        walls = self._walls(wall, reverse)
        pending: datetime | None = None
        while True:
            fire = pending if pending is not None else next(walls, None)
            pending = None
            if fire is None:  # cronsim gives up after 50 years without a match
                return
            fold = _fold(fire, tz)
            if fold < _ZERO:  # skipped by a spring-forward jump
                end = _gap_end(fire, tz)
                instants = [] if self._every_hour else [end]
                # Step over the rest of the gap at once rather than one wall time at a time.
                if reverse:
                    walls = self._walls(self._wall(end - _TICK) + _TICK, reverse)
                else:
                    walls = self._walls(self._wall(end) - _TICK, reverse)
            elif fold == _ZERO or not self._every_hour:
                instants = [fire.replace(tzinfo=tz, fold=0).astimezone(UTC)]  # first occurrence
            else:
                # Every-hour schedule in a repeated hour: fire on both passes, in real order,
                # so gather this hour's wall times first.
                run = [fire]
                for later in walls:
                    if _fold(later, tz) <= _ZERO or abs(later - fire) >= fold:
                        pending = later
                        break
                    run.append(later)
                first, second = ([w.replace(tzinfo=tz, fold=f).astimezone(UTC) for w in run]
                                 for f in (0, 1))
                instants = second + first if reverse else first + second
            for instant in instants:
                # Only instants beyond the bound, once each: merged wall times repeat one.
                if instant < bound if reverse else instant > bound:
                    yield instant
                    bound = instant

    def _walls(self, wall: datetime, reverse: bool) -> CronSim:
        """A cronsim iterator over naive fire times strictly after (or before) ``wall``."""
        whole = wall.replace(second=0, microsecond=0)
        if reverse and whole != wall:
            whole += _MINUTE
        # Starting on a whole minute makes cronsim 2.6 (which drops seconds) and later versions
        # step to the same times. Each call parses the expression again (about 6 us), which is
        # why next_after goes on with the iterator it already has.
        return CronSim(self._matched, whole, reverse=reverse)

    def _wall(self, instant: datetime) -> datetime:
        if self._utc:
            return instant.replace(tzinfo=None)
        return instant.astimezone(self.tzinfo).replace(tzinfo=None, fold=0)

    def _skipped_fire(self, instant: datetime) -> datetime | None:
        """The wall time this schedule moved forward to ``instant``, if a gap made it do so."""
        if self._utc or self._every_hour:
            return None
        before = _offset((instant - _SECOND).astimezone(self.tzinfo))
        after = _offset(instant.astimezone(self.tzinfo))
        if after <= before:
            return None
        gap_start = (instant + before).replace(tzinfo=None)  # the wall clock jumps from here
        fire = next(self._walls(gap_start - _TICK, reverse=False), None)
        if fire is None or not gap_start <= fire < gap_start + (after - before):
            return None
        return fire


class IntervalSchedule(Schedule):
    """Runs over fixed lengths of real time, anchored at ``start`` (or 1970-01-01 00:00 UTC)."""

    def __init__(
        self,
        every: str | timedelta = "10m",
        timezone: str = "UTC",
        start: DateLike | None = None,
        end: DateLike | None = None,
    ) -> None:
        super().__init__(timezone, start, end)
        self.every = _parse_every(every)
        """The length of every interval."""
        self._anchor = self.start if self.start is not None else _EPOCH

    @property
    def description(self) -> str:
        return f"every {_span_words(self.every)}"

    def next_after(self, moment: datetime) -> Interval | None:
        steps = (self._moment(moment) - self._anchor) // self.every
        if self.start is not None:
            steps = max(steps, 0)
        start = self._anchor + steps * self.every
        end = start + self.every
        if self.end is not None and end > self.end:
            return None
        return Interval(start, end, self.timezone)

    def intervals_between(self, start: DateLike, end: DateLike) -> list[Interval]:
        lo, hi = self.bounds(start, end)
        begin = self._anchor - ((self._anchor - lo) // self.every) * self.every  # first >= lo
        out: list[Interval] = []
        while begin + self.every <= hi:
            out.append(Interval(begin, begin + self.every, self.timezone))
            begin += self.every
        return out


def parse_schedule(
    schedule: str | None,
    every: str | timedelta | None = None,
    timezone: str = "UTC",
    start: DateLike | None = None,
    end: DateLike | None = None,
) -> Schedule | None:
    """Build a Pipeline's schedule from its options; None when it has neither kind."""
    if schedule is not None and every is not None:
        raise InvalidOptionError(
            f"Give schedule= or every=, not both (got schedule={schedule!r} and every={every!r}). "
            "Use schedule for times on the calendar ('30 2 * * *'), every for fixed lengths "
            "('1h').",
            option="every", value=every,
        )
    if schedule is not None:
        return CronSchedule(schedule, timezone, start, end)
    if every is not None:
        return IntervalSchedule(every, timezone, start, end)
    get_zone(timezone)
    for option, value in (("start", start), ("end", end)):
        if value is not None:
            raise InvalidOptionError(
                f"{option}={value!r} needs a schedule to bound; add schedule= or every=, "
                f"or drop {option}.",
                option=option, value=value,
            )
    return None


def next_fire_times(schedule: Schedule, after: datetime, count: int) -> list[Interval]:
    """The next ``count`` intervals whose runs fire after ``after`` (fewer past the end)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidOptionError(
            f"count={count!r} is invalid: give a whole number, 0 or more.",
            option="count", value=count,
        )
    out: list[Interval] = []
    moment = after
    while len(out) < count:
        interval = schedule.next_after(moment)
        if interval is None:
            break
        out.append(interval)
        moment = interval.end
    return out


def describe_dst(schedule: Schedule, interval: Interval) -> str | None:
    """A note when ``interval`` spans or touches a DST change in the schedule's zone, else None.

    For example ``"23h long: clocks go forward 1h at 02:00 on 2026-03-08 in America/New_York"``.
    """
    tz = schedule.tzinfo
    if tz.key in _UTC_KEYS:
        return None
    notes = []
    for change in _transitions(tz, interval.start, interval.end):
        before = _offset((change - _SECOND).astimezone(tz))
        shift = _offset(change.astimezone(tz)) - before
        way = "forward" if shift > _ZERO else "back"
        when = (change + before).replace(tzinfo=None)
        note = f"clocks go {way} {_short(abs(shift))} at {when:%H:%M} on {when:%Y-%m-%d}"
        note += f" in {tz.key}"
        notes.append(f"starts as {note}" if change == interval.start else note)
    for label, instant in (("starts", interval.start), ("ends", interval.end)):
        local = instant.astimezone(tz)
        if _fold(local.replace(tzinfo=None), tz) > _ZERO:
            nth = "second" if local.fold else "first"
            notes.append(f"{label} at the {nth} of the two {local:%H:%M}s that night")
        skipped = schedule._skipped_fire(instant) if isinstance(schedule, CronSchedule) else None
        if skipped is not None:
            notes.append(
                f"{label} at {local:%H:%M} because {skipped:%H:%M} does not exist that night"
            )
    return f"{_short(interval.duration)} long: " + "; ".join(notes) if notes else None


def _minute_step(cron: str, zone: ZoneInfo) -> int | None:
    """For ``* * * * *`` or ``*/k * * * *`` (k dividing 60) in a zone whose UTC offsets are all
    multiples of k minutes, the seconds between fires; else None. Such schedules fire in every
    hour, so by the DST policy they follow real time, and their fires are multiples of k
    minutes since the epoch."""
    match = re.fullmatch(r"(?:\*|\*/(\d+)) \* \* \* \*", cron)
    if match is None:
        return None
    step = int(match[1] or 1)
    if not 0 < step <= 60 or 60 % step:
        return None
    year = datetime.now(UTC).year
    offsets = {
        zone.utcoffset(datetime(y, m, 1)) for y in range(year - 1, year + 3) for m in (1, 7)
    }
    if any(off is None or off.total_seconds() % (step * 60) for off in offsets):
        return None
    return step * 60


def _steps(bound: datetime, step: int, reverse: bool) -> Iterator[datetime]:
    """Multiples of ``step`` seconds since the epoch, strictly after ``bound`` (or strictly
    before it, latest first), as UTC instants."""
    seconds = bound.timestamp()
    if reverse:
        at = math.ceil(seconds / step) * step - step
        while True:
            yield datetime.fromtimestamp(at, UTC)
            at -= step
    at = math.floor(seconds / step) * step + step
    while True:
        yield datetime.fromtimestamp(at, UTC)
        at += step


def get_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; an unknown one raises with the closest real names."""
    try:
        if isinstance(name, str) and name:
            return ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    names = {key.lower(): key for key in zoneinfo.available_timezones()}
    text = str(name).strip().lower()
    cities = {key.rsplit("/", 1)[-1]: key for key in names}  # "new_yrok" finds New_York too
    close = difflib.get_close_matches(text, names, n=1) or [
        cities[city] for city in difflib.get_close_matches(text.rsplit("/", 1)[-1], cities, n=1)
    ]
    hint = f" Did you mean {names[close[0]]!r}?" if close else ""
    raise InvalidOptionError(
        f"Unknown time zone {name!r}: give an IANA name such as 'UTC', 'Europe/London' or "
        f"'America/New_York'.{hint}",
        option="timezone", value=name,
    )


def _compile(expr: object) -> tuple[str, str, CronSim]:
    """Resolve @-shortcuts and check the fields with cronsim: the 5-field text, the text to
    give cronsim (its day fields rewritten by ``_day_fields``) and a parsed copy of that."""

    def bad(why: str) -> InvalidOptionError:
        return InvalidOptionError(
            f"Schedule {expr!r} is not a valid cron expression: {why}.",
            option="schedule", value=expr,
        )

    if not isinstance(expr, str):
        raise bad("give text such as '*/10 * * * *' or '@daily'")
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            close = difflib.get_close_matches(text.lower(), ALIASES, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise bad(f"use one of {', '.join(ALIASES)}{hint}, or 5 cron fields like '30 2 * * *'")
        text = ALIASES[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise bad(
            f"it has {len(fields)} fields, but needs 5: minute hour day-of-month month "
            "day-of-week, like '30 2 * * *' for 02:30 every day"
        )
    minute, hour, dom, month, dow = fields
    dom, dow = _day_fields(dom, month, dow)
    matched = f"{minute} {hour} {dom} {month} {dow}"
    try:
        return text, matched, CronSim(matched, datetime(1970, 1, 1))
    except CronSimError as exc:
        for index, (name, allowed) in enumerate(_FIELDS):
            if str(exc) == f"Bad {name}":
                raise bad(
                    f"the {name} field {fields[index]!r} is wrong; use {allowed}, '*', "
                    "lists (1,15), ranges (1-5) or steps (*/10)"
                ) from None
        raise bad(str(exc)) from None


def _day_fields(dom: str, month: str, dow: str) -> tuple[str, str]:
    """The day-of-month and day-of-week fields to give cronsim so that it picks the days that
    croniter (Airflow) picks: both must match if either is unrestricted, else either may."""
    dom = "*" if dom == "?" else dom  # croniter reads '?' as '*'; cronsim rejects it
    dow = "*" if dow == "?" else dow
    # Unrestricted: a day must match the other field. cronsim ANDs when one starts with '*'.
    dom_any, dow_any = "*" in dom.split(","), "*" in dow.split(",")
    if dom_any or dow_any:
        return "*" if dom_any else dom, "*" if dow_any else dow
    # croniter also counts a field naming every value as '*' when the other field has a '*'
    # in it: "*/2 * 0-6" is odd days, "1-31 * */2" Sundays, Tuesdays, Thursdays, Saturdays.
    every_date, every_weekday = _fills(f"0 0 {dom} * *", _DATES), _fills(f"0 0 * * {dow}", _WEEK)
    if every_date and "*" in dow:
        return "*", dow
    if every_weekday and "*" in dom:
        return dom, "*"
    if every_date or every_weekday:
        return "*", "*"  # "*/1 * sat": either matches every day (cronsim's words would not say so)
    if _exists(f"0 0 {dom} * *") and not _exists(f"0 0 {dom} {month} *"):
        return "*", dow  # "30 2 mon": only Mondays can match (cronsim 2.6 rejects the 30th)
    # cronsim ORs only when neither field starts with '*', so spell "*/2" as "1-31/2": the
    # same days to cronsim, and its explain() still says "every second day of month".
    return _spell(dom, "1-31"), _spell(dow, "0-7")


def _spell(field: str, whole: str) -> str:
    """``field`` with each leading ``*`` written as the range ``whole`` it stands for."""
    return ",".join(whole + term[1:] if term.startswith("*") else term for term in field.split(","))


# A cron expression fires at exactly these times, in order, when the field it tests names
# every value of its range: every hour of a day, days 1-31 (of January), Sunday to Saturday.
_HOURS = [datetime(2000, 1, 1, hour) for hour in range(24)]
_DATES = [datetime(2000, 1, day) for day in range(1, 32)]
_WEEK = [datetime(2000, 1, day) for day in range(2, 9)]  # 2000-01-02 was a Sunday


def _every_hour(hours: str) -> bool:
    """Whether the hour field names all 24 hours: ``*``, ``0-23``, ``*/1``..."""
    if hours == "*":
        return True
    if hours.replace(",", "").isdigit() and hours.count(",") < 23:
        return False  # a plain list of fewer than 24 hours, without stepping through a day
    return _fills(f"0 {hours} * * *", _HOURS)


def _exists(cron: str) -> bool:
    """Whether cronsim accepts ``cron`` (a day-of-month must exist in some chosen month)."""
    try:
        CronSim(cron, _HOURS[0])
    except CronSimError:
        return False
    return True


def _fills(cron: str, fires: list[datetime]) -> bool:
    """Whether cronsim's first fire times for ``cron`` are ``fires`` (False if it is invalid:
    ``_compile`` reports that, naming the field)."""
    try:
        found = CronSim(cron, fires[0] - _MINUTE)
    except CronSimError:
        return False
    return all(next(found, None) == fire for fire in fires)


def _parse_every(every: object) -> timedelta:
    try:
        seconds = parse_duration(every)
    except ValueError as exc:
        raise InvalidOptionError(
            f"every={every!r} is not a valid interval: {exc}.", option="every", value=every
        ) from None
    if seconds < 1 or seconds != int(seconds):
        raise InvalidOptionError(
            f"every={every!r} is not a valid interval: give a whole number of seconds, "
            "1s or more, like '30s' or '10m'.",
            option="every", value=every,
        )
    return timedelta(seconds=int(seconds))


def _to_utc(value: object, tz: ZoneInfo, option: str) -> datetime:
    """An instant from a date, a datetime (naive: wall time in ``tz``) or ISO text."""
    moment: object = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if isinstance(moment, datetime):
        if moment.utcoffset() is not None:
            return moment.astimezone(UTC)
        return _wall_to_utc(moment, tz)
    if isinstance(moment, date):
        return _wall_to_utc(datetime.combine(moment, time()), tz)
    raise InvalidOptionError(
        f"{option}={value!r} is not a date or time: give a date, a datetime, or ISO text like "
        "'2026-03-08' or '2026-03-08T02:30' (add '+00:00' for UTC).",
        option=option, value=value,
    )


def _wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall time as an instant, by the DST policy: first occurrence, or the gap's end."""
    fold = _fold(wall, tz)
    if fold < _ZERO:
        return _gap_end(wall, tz)
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _offset(local: datetime) -> timedelta:
    return local.utcoffset() or _ZERO


def _fold(wall: datetime, tz: ZoneInfo) -> timedelta:
    """How long the naive ``wall`` repeats in ``tz``: 0 if once, negative if it never happens."""
    first = wall.replace(tzinfo=tz, fold=0)  # a naive datetime can still carry fold=1
    return _offset(first) - _offset(first.replace(fold=1))


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant after the spring-forward gap that swallowed the naive ``wall``."""
    # In a gap, fold=1 reads the wall time with the offset after the jump and fold=0 with the
    # one before (PEP 495), which puts the jump between the two readings.
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _offset_change(tz, early, wall.replace(tzinfo=tz, fold=0).astimezone(UTC))


def _offset_change(tz: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The instant in ``(lo, hi]`` where ``tz`` takes ``hi``'s offset; there must be one change."""
    target = _offset(hi.astimezone(tz))
    while hi - lo > _SECOND:
        mid = lo + (hi - lo) / 2
        if _offset(mid.astimezone(tz)) == target:
            hi = mid
        else:
            lo = mid
    return lo.replace(microsecond=0) + _SECOND  # time zones change on whole seconds


def _transitions(tz: ZoneInfo, lo: datetime, hi: datetime) -> list[datetime]:
    """Instants in ``[lo, hi]`` where ``tz`` changes offset, sampled daily (zones change rarely)."""
    found = []
    prev = lo - _SECOND
    prev_offset = _offset(prev.astimezone(tz))
    point = lo
    while True:
        offset = _offset(point.astimezone(tz))
        if offset != prev_offset:
            found.append(_offset_change(tz, prev, point))
        if point >= hi:
            return found
        prev, prev_offset, point = point, offset, min(point + _DAY, hi)


def _span_words(span: timedelta) -> str:
    """``"10 minutes"``, ``"hour"``, ``"1 hour 30 minutes"``: for "every ..."."""
    rest = int(span.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append((count, unit))
    if len(parts) == 1 and parts[0][0] == 1:
        return parts[0][1]
    return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts)


def _short(span: timedelta) -> str:
    """``"23h"``, ``"23h30m"``, ``"1h"``, ``"10m"``: a length in hours and minutes."""
    hours, rest = divmod(int(span.total_seconds()), 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    return text or "0s"
