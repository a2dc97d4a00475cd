"""The vendor API's path templates: each request's metric label and its errors' `endpoint`."""

from __future__ import annotations

# Path templates: the metric label and the `endpoint` of errors.
LOGIN = "/auth/login"
REFRESH = "/auth/refreshtoken"
OWNED = "/chargepoints/owned"
CHARGEPOINT = "/chargepoints/{id}"
STATUS = "/chargepoints/{id}/status"
CP_SETTINGS = "/chargepoints/{id}/settings"
CONNECTOR_SETTINGS = "/chargepoints/{id}/connectors/{connector}/settings"
SESSIONS = "/chargepoints/{id}/chargingsessions"
CONNECTOR_SESSIONS = "/chargepoints/{id}/connectors/{connector}/chargingsessions"
SESSION = "/chargepoints/{id}/chargingsessions/{session}"
REMOTE_START = "/chargepoints/{id}/connectors/{connector}/remotestart"
REMOTE_STOP = "/chargepoints/{id}/connectors/{connector}/remotestop"
REBOOT = "/chargepoints/{id}/reboot"
SCHEDULES = "/chargepoints/{id}/schedules"
SCHEDULE = "/chargepoints/{id}/schedules/{schedule}"
CALLBACKS = "/chargepoints/callbacks/{action}"
ORGANISATION_STATUSES = "/organisations/{org}/chargepoints/statuses"
SCHEDULE_OVERRIDE = "/chargepoints/{id}/connectors/{connector}/schedule/override"
SCHEDULE_OVERRIDE_STATUS = "/chargepoints/{id}/schedule/override/status"
