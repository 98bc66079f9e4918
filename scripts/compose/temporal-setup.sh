#!/bin/sh
# One-shot, before the Temporal server starts: its two databases, created if missing and brought up to
# the schema version the tool carries (embedded in temporal-sql-tool; no schema files needed). Idempotent.
# Environment: TEMPORAL_DB_HOST, TEMPORAL_DB_PORT (5432), TEMPORAL_DB_USER, TEMPORAL_DB_PASSWORD (or
# TEMPORAL_DB_PASSWORD_FILE, a file holding it).
set -eu
if [ -n "${TEMPORAL_DB_PASSWORD_FILE:-}" ]; then TEMPORAL_DB_PASSWORD="$(cat "$TEMPORAL_DB_PASSWORD_FILE")"; fi
sql() { temporal-sql-tool --plugin postgres12 --ep "$TEMPORAL_DB_HOST" -p "${TEMPORAL_DB_PORT:-5432}" -u "$TEMPORAL_DB_USER" --pw "${TEMPORAL_DB_PASSWORD:-}" "$@"; }
for pair in temporal:temporal temporal_visibility:visibility; do
  db="${pair%%:*}" schema="postgresql/v12/${pair#*:}"
  sql --db "$db" create-database 2>/dev/null || echo "database $db exists"
  # Versioning tables only, at 0.0, on a new database; update-schema then applies every version.
  sql --db "$db" setup-schema -v 0.0 2>/dev/null || echo "schema versioning of $db is set up"
  sql --db "$db" update-schema --schema-name "$schema"
done
