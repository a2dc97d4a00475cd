#!/bin/bash
# Sourced by the mysql image's entrypoint on its first start (empty data volume) only.
# Creates `charged_ro`, a SELECT-only user for Grafana, when MYSQL_READONLY_PASSWORD is set.
# The password is passed as a SQL string literal: keep it to [0-9a-f] (openssl rand -hex 24).
if [ -n "${MYSQL_READONLY_PASSWORD:-}" ]; then
	docker_process_sql --database=mysql <<-EOSQL
		CREATE USER IF NOT EXISTS 'charged_ro'@'%' IDENTIFIED BY '${MYSQL_READONLY_PASSWORD}';
		GRANT SELECT ON \`charged\`.* TO 'charged_ro'@'%';
		GRANT SELECT ON \`charged_demo\`.* TO 'charged_ro'@'%';
	EOSQL
fi
