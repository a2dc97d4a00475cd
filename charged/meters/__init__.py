"""Site meters: what else a fuse feeds besides the chargers (the building's own load).

A meter is read from an MQTT topic (:mod:`.mqtt`) or an HTTP JSON URL (:mod:`.http`); each
payload is turned into amperes per site phase (:mod:`.payload`) and handed to the
:class:`~.book.MeterBook`, which the balancer asks every tick what to subtract from each
metered fuse: the fresh reading plus its headroom, or the meter's fallback when it is stale.
Every reading is also a ``meter_reading`` row, through the daemon's batch writer.
"""
