"""Fuse limits over time: exact cases of the weekly schedule in the site's local time,
across both daylight-saving changes, and the config's refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from charged.balancer.configured import schedule_from_settings, site_from_settings
from charged.balancer.schedule import LimitSchedule, Period, limits_at, local_slot
from charged.config import ConfigError, settings_from_mapping

MON_FRI = frozenset(range(5))
SUN = frozenset({6})
ZONE = "Europe/Stockholm"


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def schedule(*periods: Period, zone: str = ZONE) -> LimitSchedule:
    return LimitSchedule(zone, {"main": periods})


WORKDAY = Period(MON_FRI, 7 * 60, 18 * 60, (40.0, 40.0, 40.0))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Monday 2026-01-05, CET (UTC+1): 07:00 local is 06:00 UTC
        (utc(2026, 1, 5, 5, 59, 59), None),
        (utc(2026, 1, 5, 6, 0, 0), (40.0, 40.0, 40.0)),
        (utc(2026, 1, 5, 16, 59, 59), (40.0, 40.0, 40.0)),
        (utc(2026, 1, 5, 17, 0, 0), None),  # 18:00 local: the end is excluded
        (utc(2026, 1, 10, 6, 0, 0), None),  # Saturday
        # Monday 2026-06-01, CEST (UTC+2): 07:00 local is 05:00 UTC
        (utc(2026, 6, 1, 4, 59, 59), None),
        (utc(2026, 6, 1, 5, 0, 0), (40.0, 40.0, 40.0)),
        (utc(2026, 6, 1, 15, 59, 59), (40.0, 40.0, 40.0)),
        (utc(2026, 6, 1, 16, 0, 0), None),
        # Friday 2026-01-09 23:30 UTC is Saturday 00:30 local: not a workday
        (utc(2026, 1, 9, 23, 30), None),
    ],
)
def test_workday_hours_follow_local_time(moment: float, expected: object) -> None:
    assert limits_at(schedule(WORKDAY), moment).get("main") == expected


def test_the_skipped_spring_hour_matches_nothing() -> None:
    # Sunday 2026-03-29: at 01:00 UTC the clocks go from 02:00 CET to 03:00 CEST
    gap = Period(SUN, 2 * 60, 3 * 60, (20.0, 20.0, 20.0))
    early = Period(SUN, 1 * 60, 2 * 60 + 30, (25.0, 25.0, 25.0))
    assert local_slot(ZONE, utc(2026, 3, 29, 0, 59, 59)) == (6, 119)
    assert local_slot(ZONE, utc(2026, 3, 29, 1, 0, 0)) == (6, 180)
    both = schedule(gap, early)
    assert limits_at(both, utc(2026, 3, 29, 0, 0, 0)).get("main") == (25.0, 25.0, 25.0)
    assert limits_at(both, utc(2026, 3, 29, 0, 59, 59)).get("main") == (25.0, 25.0, 25.0)
    # the first instant after the gap is 03:00 local: neither entry (02:00–03:00 never was)
    assert limits_at(both, utc(2026, 3, 29, 1, 0, 0)) == {}
    assert all(
        limits_at(schedule(gap), utc(2026, 3, 28, 23) + s).get("main") is None
        for s in range(0, 4 * 3600, 60)
    )


def test_the_repeated_autumn_hour_matches_twice() -> None:
    # Sunday 2026-10-25: at 01:00 UTC the clocks go from 03:00 CEST back to 02:00 CET
    night = Period(SUN, 2 * 60, 3 * 60, (20.0, 20.0, 20.0))
    s = schedule(night)
    assert limits_at(s, utc(2026, 10, 24, 23, 59, 59)) == {}  # 01:59:59 CEST
    assert limits_at(s, utc(2026, 10, 25, 0, 0, 0))["main"] == (20.0, 20.0, 20.0)  # 02:00 CEST
    assert limits_at(s, utc(2026, 10, 25, 0, 59, 59))["main"] == (20.0, 20.0, 20.0)
    assert limits_at(s, utc(2026, 10, 25, 1, 0, 0))["main"] == (20.0, 20.0, 20.0)  # 02:00 CET
    assert limits_at(s, utc(2026, 10, 25, 1, 59, 59))["main"] == (20.0, 20.0, 20.0)
    assert limits_at(s, utc(2026, 10, 25, 2, 0, 0)) == {}  # 03:00 CET
    in_force = sum(1 for m in range(0, 6 * 60) if limits_at(s, utc(2026, 10, 24, 22) + 60 * m))
    assert in_force == 120  # two real hours that day


def test_a_night_over_midnight_is_two_entries_and_utc_is_the_default() -> None:
    sat_late = Period(frozenset({5}), 22 * 60, 24 * 60, (50.0, 50.0, 32.0))
    sun_early = Period(SUN, 0, 6 * 60, (50.0, 50.0, 32.0))
    s = schedule(sat_late, sun_early, zone="UTC")
    assert limits_at(s, utc(2026, 1, 10, 21, 59, 59)) == {}
    assert limits_at(s, utc(2026, 1, 10, 22, 0))["main"] == (50.0, 50.0, 32.0)
    assert limits_at(s, utc(2026, 1, 10, 23, 59, 59))["main"] == (50.0, 50.0, 32.0)
    assert limits_at(s, utc(2026, 1, 11, 0, 0))["main"] == (50.0, 50.0, 32.0)
    assert limits_at(s, utc(2026, 1, 11, 5, 59, 59))["main"] == (50.0, 50.0, 32.0)
    assert limits_at(s, utc(2026, 1, 11, 6, 0)) == {}


def test_the_config_builds_the_schedule_and_the_site_takes_its_limits() -> None:
    settings = settings_from_mapping(
        {
            "site": {
                "timezone": ZONE,
                "margin": 2,
                "fuse": {
                    "name": "main",
                    "limit": 63,
                    "children": [
                        {
                            "name": "row-a",
                            "limit": 40,
                            "chargers": ["CP1"],
                            "schedule": [
                                {
                                    "days": ["mon", "tue", "wed", "thu", "fri"],
                                    "start": "07:00",
                                    "end": "18:00",
                                    "limit": [25, 25, 16],
                                },
                            ],
                        }
                    ],
                },
            }
        },
        require_secrets=False,
    )
    sched = schedule_from_settings(settings.site)
    assert sched.timezone == ZONE
    assert sched.periods == {"row-a": (Period(MON_FRI, 420, 1080, (25.0, 25.0, 16.0)),)}
    site = site_from_settings(settings.site)
    at_work = site.with_limits(limits_at(sched, utc(2026, 1, 5, 8)))
    row_a = at_work.root.children[0]
    assert row_a.limit == (25.0, 25.0, 16.0)
    assert at_work.capacity(row_a) == (23.0, 23.0, 14.0)  # less the 2 A margin
    assert at_work.capacity(at_work.root) == (61.0, 61.0, 61.0)
    assert at_work.fuses_of("CP1")[-1] is row_a
    # nothing in force: the very same site (its index is kept)
    assert site.with_limits(limits_at(sched, utc(2026, 1, 10, 8))) is site
    assert not schedule_from_settings(settings_from_mapping({}, require_secrets=False).site)
    plain = {"site": {"fuse": {"name": "main", "limit": 63}}}
    assert not schedule_from_settings(settings_from_mapping(plain, require_secrets=False).site)


def fuse_with(schedule_entries: list[object], **site: object) -> dict[str, object]:
    return {"site": {**site, "fuse": {"name": "main", "limit": 63, "schedule": schedule_entries}}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            fuse_with(
                [
                    {"start": "07:00", "end": "18:00", "limit": 40, "days": ["mon"]},
                    {"start": "17:30", "end": "19:00", "limit": 30, "days": ["fri", "mon"]},
                ]
            ),
            "<config>: site.fuse: schedule: entries 0 and 1 overlap on mon from 17:30 to 18:00; "
            "one limit at a time",
        ),
        (
            fuse_with([{"start": "22:00", "end": "06:00", "limit": 40}]),
            "<config>: site.fuse.schedule.0: start 22:00 is not before end 06:00; a range over "
            "midnight is two entries (… to '24:00', and '00:00' to … on the next day)",
        ),
        (
            fuse_with([{"start": 420, "end": "18:00", "limit": 40}]),
            "<config>: site.fuse.schedule.0.start: must be a time of day in quotes, 'HH:MM' "
            "(e.g. '07:00') (got 420)",
        ),
        (
            fuse_with([{"start": "07:00", "end": "24:30", "limit": 40}]),
            "<config>: site.fuse.schedule.0.end: must be a time of day 'HH:MM' from '00:00' to "
            "'24:00' (got '24:30')",
        ),
        (
            fuse_with([{"start": "07:00", "end": "18:00", "limit": 40, "day": ["mon"]}]),
            "<config>: unknown key 'site.fuse.schedule.0.day'; check its spelling against "
            "config.example.yaml",
        ),
        (
            fuse_with([{"start": "07:00", "end": "18:00", "limit": 40, "days": ["mon", "mon"]}]),
            "<config>: site.fuse.schedule.0: days: a weekday is named twice",
        ),
        (
            fuse_with([], timezone="Europe/Stockholmm"),
            "<config>: site.timezone: is not a time zone this machine knows: an IANA name such "
            "as Europe/Stockholm or UTC (install tzdata if none is known) "
            "(got 'Europe/Stockholmm')",
        ),
    ],
)
def test_bad_schedules_are_one_line_naming_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data, require_secrets=False)
    assert str(caught.value) == message


def test_charged_check_prints_the_schedules_and_the_power_target_in_the_tree() -> None:
    from charged.check_site import AccountUnread, check_site

    settings = settings_from_mapping(
        {
            "site": {
                "timezone": ZONE,
                "power_target": {"target_kw": 30, "window_min": 60, "monthly": True},
                "fuse": {
                    "name": "main",
                    "limit": 63,
                    "schedule": [
                        {"days": ["mon", "tue"], "start": "07:00", "end": "18:00", "limit": 40},
                        {"days": ["sun"], "start": "00:00", "end": "06:00", "limit": [63, 63, 50]},
                    ],
                    "children": [{"name": "row-a", "limit": 40, "chargers": ["CP1"]}],
                },
            }
        },
        require_secrets=False,
    )
    tree = check_site(settings, AccountUnread("not asked"))[0]
    assert list(tree.details) == [
        "fuse main: 63 A per phase",
        "  schedule (Europe/Stockholm): mon,tue 07:00–18:00 40 A; sun 00:00–06:00 63/63/50 A",
        "  fuse row-a: 40 A per phase",
        "    charger CP1: rotation L1L2L3, installation current not read",
        "power target 30 kW mean per 60-min window, raised to the month's highest window mean "
        "(230 V per phase), on fuse main",
    ]
