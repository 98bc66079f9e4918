#!/bin/sh
# Runs once when the PostgreSQL volume is new: Berth's and Temporal's roles and databases (roles.sql),
# with each role's password read from its secret file (docker-compose.yml gives them to this service only).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$(cat /run/secrets/berth_owner_password)" \
  -v app_password="$(cat /run/secrets/berth_app_password)" \
  -v temporal_password="$(cat /run/secrets/temporal_db_password)" -v app_db=berth \
  -f /docker-entrypoint-initdb.d/roles.sql.in
