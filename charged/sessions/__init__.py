"""The session tracker: a daemon task keeping charging_session up to date from the stored
polls and the vendor's chargingsessions (the derivation itself is in ``analysis/``)."""
