#!/bin/sh
# One-shot: bring Temporal's schemas up to date, then register the namespace and Berth's search attributes.
set -eu
for db in temporal temporal_visibility; do
  dir=/etc/temporal/schema/postgresql/v12/temporal/versioned
  [ "$db" = temporal_visibility ] && dir=/etc/temporal/schema/postgresql/v12/visibility/versioned
  temporal-sql-tool --plugin postgres12 --ep "$TEMPORAL_DB_HOST" -p 5432 -u "$TEMPORAL_DB_USER" --pw "$TEMPORAL_DB_PASSWORD" --db "$db" setup-schema -v 0.0 || true
  temporal-sql-tool --plugin postgres12 --ep "$TEMPORAL_DB_HOST" -p 5432 -u "$TEMPORAL_DB_USER" --pw "$TEMPORAL_DB_PASSWORD" --db "$db" update-schema -d "$dir"
done
