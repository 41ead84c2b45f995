#!/usr/bin/env bash
# Tidewire: runs once from /docker-entrypoint-initdb.d when the Compose Postgres starts on an empty
# data directory. It hands the replication role's name and password to init.sql as psql variables,
# so the password comes from the environment (REPLICATION_USER, REPLICATION_PASSWORD), not from a file.
set -euo pipefail

: "${REPLICATION_USER:?REPLICATION_USER is not set}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD is not set}"
: "${API_USER:?API_USER is not set}"
: "${API_PASSWORD:?API_PASSWORD is not set}"

psql --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set ON_ERROR_STOP=1 \
  --set database="$POSTGRES_DB" \
  --set replication_user="$REPLICATION_USER" \
  --set replication_password="$REPLICATION_PASSWORD" \
  --set api_user="$API_USER" \
  --set api_password="$API_PASSWORD" \
  --file /docker-entrypoint-initdb.d/tidewire/init.sql
