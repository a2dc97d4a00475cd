"""Charging sessions: derived from the stored polls (``derive.py``, pure), read and written in
``charging_session`` (``store.py``), kept up to date by a daemon task (``tracker.py``).

Below ``analysis/``: the reports read sessions, the tracker never reads the reports."""
