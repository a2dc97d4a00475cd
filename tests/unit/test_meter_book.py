"""Site meters, without a broker: payloads, staleness and fallbacks, the config keys."""

from __future__ import annotations

from typing import Any

import pytest

from charged.config import ConfigError, settings_from_mapping
from charged.meters.book import MeterBook, MeterSpec
from charged.meters.payload import PayloadError, PayloadSpec, decode, phase_currents
from charged.metrics import Metrics


def test_payload_fields_by_dotted_path_in_amperes_or_watts() -> None:
    doc = decode(b'{"data": {"phases": [{"p": 2300}, {"p": "460"}, {"p": 0}]}}')
    spec = PayloadSpec(("data.phases.0.p", "data.phases.1.p", "data.phases.2.p"), "W", 230.0)
    assert phase_currents(doc, spec) == (10.0, 2.0, 0.0)
    amps = PayloadSpec(("l1", "l2", "l3"))
    assert phase_currents({"l1": 1, "l2": 2.5, "l3": "3"}, amps) == (1.0, 2.5, 3.0)
    for bad, message in (
        ({"l1": 1, "l2": 2}, "field l3: the payload has no 'l3' there"),
        ({"l1": True, "l2": 2, "l3": 3}, "field l1: True is not a number"),
        ({"l1": "x", "l2": 2, "l3": 3}, "field l1: 'x' is not a number"),
        ({"l1": "nan", "l2": 2, "l3": 3}, "field l1: 'nan' is not a finite number"),
        ({"l1": [1], "l2": 2, "l3": 3}, "field l1: list is not a number"),
    ):
        with pytest.raises(PayloadError) as err:
            phase_currents(bad, amps)
        assert str(err.value) == message
    with pytest.raises(PayloadError, match="not JSON"):
        decode(b"\xff{")


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append(("warning", event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append(("info", event, kw))


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_a_stale_meter_counts_its_fallback_logged_and_counted_once_per_transition() -> None:
    log, metrics = Log(), Metrics()
    book = MeterBook(
        [MeterSpec("main", "mqtt", max_age_s=60.0, fallback=(25.0, 25.0, 25.0), headroom=2.0)],
        metrics=metrics,
        logger=log,
    )
    assert book.loads(1000.0) == {"main": (25.0, 25.0, 25.0)}  # no reading yet: stale
    assert book.loads(1030.0) == {"main": (25.0, 25.0, 25.0)}
    stale = [line for line in log.lines if line[1] == "site meter stale: counting its fallback"]
    assert len(stale) == 1 and stale[0][2]["age_s"] is None
    rows = book.record("main", 1040.4, (10.0, -3.0, 4.0))
    assert rows == [
        {
            "read_at": rows[0]["read_at"],
            "fuse": "main",
            "source": "mqtt",
            "l1_a": 10.0,
            "l2_a": -3.0,
            "l3_a": 4.0,
        }
    ]
    assert book.record("main", 1040.9, (11.0, 0.0, 0.0)) == []  # the same second: not stored
    assert book.loads(1050.0) == {"main": (13.0, 2.0, 2.0)}  # fresh: + headroom, export 0
    assert book.loads(1100.9) == {"main": (13.0, 2.0, 2.0)}  # 60 s old: still fresh
    assert book.loads(1101.0) == {"main": (25.0, 25.0, 25.0)}  # older: the fallback
    assert book.loads(1130.0) == {"main": (25.0, 25.0, 25.0)}
    events = [line[1] for line in log.lines]
    assert events == [
        "site meter stale: counting its fallback",
        "site meter fresh again",
        "site meter stale: counting its fallback",
    ]
    assert value(metrics, "charged_meter_stale_transitions_total", fuse="main") == 2.0
    assert value(metrics, "charged_meter_stale", fuse="main") == 1.0
    assert value(metrics, "charged_meter_current_amperes", fuse="main", phase="L1") == 11.0
    # a meter that gives no reading is logged once until it reads again
    book.failed("main", "bad_payload", "field l3: the payload has no 'l3' there")
    book.failed("main", "bad_payload", "field l3: the payload has no 'l3' there")
    assert [line[1] for line in log.lines].count("site meter gives no reading") == 1
    assert value(metrics, "charged_meter_readings_total", fuse="main", result="bad_payload") == 2


BASE: dict[str, Any] = {
    "site": {"fuse": {"name": "main", "limit": 63, "chargers": ["A"]}},
    "mqtt": {"host": "127.0.0.1"},
}


def config_error(meters: Any, **top: Any) -> str:
    data = {**BASE, **top, "site": {**BASE["site"], "meters": meters}}
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(data, source="c.yaml", require_secrets=False)
    return str(err.value)


def test_meter_keys_are_refused_in_one_line_naming_the_key() -> None:
    fields = ["a", "b", "c"]
    ok = settings_from_mapping(
        {
            **BASE,
            "site": {**BASE["site"], "meters": {"main": {"mqtt_topic": "m", "fields": fields}}},
        },
        require_secrets=False,
    )
    assert ok.site.meters["main"].fallback() is None and ok.site.meters["main"].headroom_a == 2.0
    cases = {
        "c.yaml: site: meters: 'nope' is not the name of a fuse of the site": {
            "nope": {"mqtt_topic": "m", "fields": fields}
        },
        "c.yaml: site.meters.main: give exactly one of mqtt_topic and http_url": {
            "main": {"fields": fields}
        },
        "c.yaml: site.meters.main.fields: Field required": {"main": {"mqtt_topic": "m"}},
        "c.yaml: site.meters.main.mqtt_topic: must be one topic, without the wildcards": {
            "main": {"mqtt_topic": "m/#", "fields": fields}
        },
        "c.yaml: site.meters.main.http_url: must start with https://": {
            "main": {"http_url": "ftp://x", "fields": fields}
        },
        "c.yaml: site.meters.main.unit: Input should be 'A' or 'W'": {
            "main": {"mqtt_topic": "m", "fields": fields, "unit": "kW"}
        },
        "c.yaml: unknown key 'site.meters.main.topic'": {"main": {"topic": "m", "fields": fields}},
    }
    for expected, meters in cases.items():
        message = config_error(meters)
        assert message.startswith(expected), message
        assert "\n" not in message
    no_broker = config_error({"main": {"mqtt_topic": "m", "fields": fields}}, mqtt={})
    assert no_broker.startswith("c.yaml: site.meters.main.mqtt_topic is set but mqtt.host is not")
