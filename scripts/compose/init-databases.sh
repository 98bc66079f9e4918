#!/bin/sh
# Runs once when the PostgreSQL volume is new: Berth's and Temporal's roles and databases (roles.sql).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$BERTH_OWNER_PASSWORD" -v app_password="$BERTH_APP_PASSWORD" \
  -v temporal_password="$TEMPORAL_DB_PASSWORD" -v app_db=berth \
  -f /docker-entrypoint-initdb.d/roles.sql.in
