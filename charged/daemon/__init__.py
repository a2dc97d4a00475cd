"""The daemon's composition root: what `charged run` starts, wired from the settings.

:mod:`charged.daemon.service` composes the parts (database, spool, writer, vendor client, the
tick, the ops server and control API, the daemon's tasks beside the tick);
:mod:`charged.daemon.vendor` builds the vendor client from the settings for every command that
talks to the vendor.  The parts themselves (``collector/``, ``storage/``, ``chargeamps/``, …)
know nothing of each other or of the config file.
"""
