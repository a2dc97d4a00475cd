"""Prometheus metrics of one `charged` process.

One :class:`Metrics` object per process, on its own registry (no global state, so tests can
make as many as they like).  Components take it in their constructor and default to a private
instance when none is given.  Labels never carry secrets, tokens or free-form error text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

TICK_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 60)
DB_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # collector
        self.ticks = Counter("charged_ticks", "Poll ticks run", ["result"], registry=r)
        self.tick_duration = Histogram(
            "charged_tick_duration_seconds",
            "Time from tick start to the last status parsed",
            buckets=TICK_BUCKETS,
            registry=r,
        )
        self.ticks_skipped = Counter(
            "charged_ticks_skipped", "Ticks skipped because the previous one overran", registry=r
        )
        self.chargers_polled = Counter(
            "charged_chargers_polled",
            "Charger status polls by outcome (ok, offline: the vendor said Offline, failed, "
            "malformed)",
            ["result"],
            registry=r,
        )
        self.organisation_polls = Counter(
            "charged_organisation_polls",
            "Ticks that asked GET /organisations/{id}/chargepoints/statuses, by outcome "
            "(ok; failed: the chargers were asked one by one instead)",
            ["result"],
            registry=r,
        )
        self.payload_errors = Counter(
            "charged_payload_errors",
            "API payloads that could not be parsed",
            ["endpoint"],
            registry=r,
        )
        # per charger (the label is its id; the fleet's size bounds it): availability
        self.charger_online = Gauge(
            "charged_charger_online",
            "1 while the charger's last answer said it is online, 0 after it said Offline "
            "(a charger that does not answer keeps its last value)",
            ["charge_point"],
            registry=r,
        )
        self.charger_last_seen = Gauge(
            "charged_charger_last_seen_timestamp_seconds",
            "Unix time of the last tick at which the charger answered online",
            ["charge_point"],
            registry=r,
        )
        self.last_tick_success = Gauge(
            "charged_last_successful_tick_timestamp_seconds",
            "Unix time of the last tick whose rows were all queued",
            registry=r,
        )
        self.last_tick_stored = Gauge(
            "charged_last_stored_tick_timestamp_seconds",
            "Unix time a tick's rows (answers or gaps) were last committed to the database",
            registry=r,
        )
        self.vendor_outage = Gauge(
            "charged_vendor_outage",
            "1 while no charger answered the latest tick (the vendor API or the way to it is "
            "down; the ticks are stored as gaps), else 0",
            registry=r,
        )
        # vendor API client
        self.api_requests = Counter(
            "charged_api_requests",
            "Vendor API requests by endpoint and HTTP status",
            ["endpoint", "status"],
            registry=r,
        )
        self.api_retries = Counter(
            "charged_api_retries", "Vendor API request retries", ["endpoint"], registry=r
        )
        self.token_logins = Counter(
            "charged_token_logins", "Logins with email/password", registry=r
        )
        self.token_refreshes = Counter(
            "charged_token_refreshes", "Token refreshes", ["result"], registry=r
        )
        # storage
        self.rows_queued = Counter(
            "charged_rows_queued", "Rows put on the write queue", ["table"], registry=r
        )
        self.rows_written = Counter(
            "charged_rows_written", "Rows written to the database", ["table"], registry=r
        )
        self.rows_spooled = Counter(
            "charged_rows_spooled", "Rows written to the disk spool", ["table"], registry=r
        )
        self.rows_dropped = Counter(
            "charged_rows_dropped",
            "Rows lost: the spool (or the file of refused rows) was full",
            ["table"],
            registry=r,
        )
        self.rows_duplicate = Counter(
            "charged_rows_duplicate",
            "Rows the database skipped because a row with the same key was stored already "
            "(a replay of rows written before; or a second collector, or a wall clock "
            "stepped back, stamping a tick with a time already stored)",
            ["table"],
            registry=r,
        )
        self.ticks_out_of_order = Counter(
            "charged_ticks_out_of_order",
            "Ticks whose time was not after the latest tick stored (the wall clock stepped "
            "back): their rows at a time already stored are skipped as duplicates",
            registry=r,
        )
        self.rows_rejected = Counter(
            "charged_rows_rejected",
            "Rows the database refused for their values, kept in the spool's rejected.jsonl",
            ["table"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "charged_queue_depth", "Items waiting on the write queue", registry=r
        )
        self.spool_bytes = Gauge("charged_spool_bytes", "Bytes held in the disk spool", registry=r)
        self.spool_max_bytes = Gauge(
            "charged_spool_max_bytes", "The disk spool's size limit (spool.max_bytes)", registry=r
        )
        self.database_writable = Gauge(
            "charged_database_writable",
            "0 from a failed database write to the next successful one (rows go to the spool "
            "meanwhile), else 1",
            registry=r,
        )
        self.db_write_latency = Histogram(
            "charged_db_write_seconds",
            "Time to write and commit one batch",
            buckets=DB_BUCKETS,
            registry=r,
        )
        self.db_errors = Counter("charged_db_errors", "Failed database writes", registry=r)
        # balancer (charged/balancer/runtime.py)
        fuse_phase = ["fuse", "phase"]
        self.balancer_fuse_limit = Gauge(
            "charged_balancer_fuse_limit_amperes",
            "Each fuse's limit per site phase in force (its schedule's, else the site's)",
            fuse_phase,
            registry=r,
        )
        self.balancer_fuse_envelope = Gauge(
            "charged_balancer_fuse_envelope_amperes",
            "The most the limits in force let flow through the fuse per site phase (each "
            "unconfirmed change at the higher of old and new)",
            fuse_phase,
            registry=r,
        )
        self.balancer_fuse_measured = Gauge(
            "charged_balancer_fuse_measured_amperes",
            "Current measured through the fuse per site phase at the last tick",
            fuse_phase,
            registry=r,
        )
        self.balancer_fuse_capacity = Gauge(
            "charged_balancer_fuse_capacity_amperes",
            "What the balancer may use of the fuse per site phase at the last tick: its "
            "limit less the margin and the building's load (site meters), at most the power "
            "target's cap",
            fuse_phase,
            registry=r,
        )
        self.power_target_watts = Gauge(
            "charged_power_target_watts",
            "The site power target in force: the configured one, or in monthly mode the "
            "month's highest window mean when higher",
            registry=r,
        )
        self.power_window_energy_wh = Gauge(
            "charged_power_window_energy_wh",
            "Energy the site used in the power target's window in progress (chargers and building)",
            registry=r,
        )
        self.power_window_last_mean_watts = Gauge(
            "charged_power_window_last_mean_watts",
            "Mean power of the last finished power-target window",
            registry=r,
        )
        self.power_month_peak_watts = Gauge(
            "charged_power_month_peak_watts",
            "The highest window mean of the month so far (site's local month)",
            registry=r,
        )
        self.power_site_watts = Gauge(
            "charged_power_site_watts",
            "The site's power at the last balancer step, by part (chargers, building)",
            ["part"],
            registry=r,
        )
        self.power_target_cap_amperes = Gauge(
            "charged_power_target_cap_amperes",
            "The power target's caps on the chargers under the top fuse, their mean (A per phase)",
            registry=r,
        )
        self.balancer_paused = Gauge(
            "charged_balancer_connectors_paused",
            "Connectors that want current but are paused (no room for the minimum)",
            registry=r,
        )
        self.balancer_pinned = Gauge(
            "charged_balancer_connectors_pinned",
            "Connectors a person set: fixed loads until released",
            registry=r,
        )
        self.balancer_writes = Counter(
            "charged_balancer_setpoint_writes",
            "Limits the balancer sent, by result (shadow: would have sent)",
            ["result"],
            registry=r,
        )
        self.balancer_ticks = Counter(
            "charged_balancer_ticks", "Balancer steps by outcome", ["result"], registry=r
        )
        self.balancer_tick_cpu = Histogram(
            "charged_balancer_step_cpu_seconds",
            "CPU time of one balancer step (allocation, plan, rows)",
            buckets=DB_BUCKETS,
            registry=r,
        )

        # site meters (charged/meters)
        self.meter_readings = Counter(
            "charged_meter_readings",
            "Attempts to read a site meter, by result (ok, bad_payload, unreachable)",
            ["fuse", "result"],
            registry=r,
        )
        self.meter_current = Gauge(
            "charged_meter_current_amperes",
            "A site meter's newest reading per site phase: what else its fuse feeds",
            fuse_phase,
            registry=r,
        )
        self.meter_headroom = Gauge(
            "charged_meter_headroom_amperes",
            "A per site phase a fresh meter reading is raised by: the largest rise learned "
            "(site.meters.*.headroom_a at least)",
            fuse_phase,
            registry=r,
        )
        self.meter_stale = Gauge(
            "charged_meter_stale",
            "1 while a site meter is stale and its fuse counts the meter's fallback",
            ["fuse"],
            registry=r,
        )
        self.meter_stale_total = Counter(
            "charged_meter_stale_transitions",
            "Times a site meter went stale (its fuse fell back to the configured assumption)",
            ["fuse"],
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "charged_mqtt_connected",
            "1 while the site meters' MQTT broker is connected",
            registry=r,
        )
        self.mqtt_connects = Counter(
            "charged_mqtt_connects", "Connections made to the site meters' MQTT broker", registry=r
        )

        # prices (charged/prices): the gauges of the price now are read at each scrape
        self.price_reads = Counter(
            "charged_price_reads",
            "Reads of the price series (prices.file or prices.url), by result (ok, failed)",
            ["result"],
            registry=r,
        )
        self.price_known_until = Gauge(
            "charged_price_known_until_seconds",
            "Unix time the last known price interval ends (0: none known); once it is past, "
            "no interval is dear and nothing is capped for price",
            registry=r,
        )
        self.price_now = Gauge(
            "charged_price",
            "The price of the interval now, in the series' own unit (NaN: none known)",
            registry=r,
        )
        self.price_dear = Gauge(
            "charged_price_dear",
            "1 while the price rule calls the interval now dear (charging capped)",
            registry=r,
        )

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
