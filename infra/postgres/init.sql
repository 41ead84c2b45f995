-- Tidewire: first-start initialisation of the Compose Postgres (infra/docker-compose.yml).
--
-- Run once, on an empty data directory, by 10-tidewire-init.sh, which passes the
-- replication and read-API roles' names and passwords as psql variables (:"replication_user",
-- :'replication_password', :"api_user", :'api_password') so that no secret is written into this file
-- and psql does the quoting.
-- The application role and its database are created by the image from POSTGRES_USER / POSTGRES_DB.

\set ON_ERROR_STOP on

-- pgvector: the vector type and the HNSW index of the vector table.
CREATE EXTENSION IF NOT EXISTS vector;

-- The role Debezium connects with. Its grants on the captured tables and the publication come with
-- the migrations (`tidewire db upgrade`), as in the local runtime (tidewire/runtime/postgres.py).
CREATE ROLE :"replication_user" WITH LOGIN REPLICATION PASSWORD :'replication_password';
GRANT CONNECT ON DATABASE :"database" TO :"replication_user";

-- The role the read API connects with: not a superuser, no BYPASSRLS, owns nothing, so the tables'
-- row-level security binds it. Its table grants (read the index, write chat answers, nothing on the
-- source tables) come with migration 0005, as in the local runtime.
CREATE ROLE :"api_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'api_password';
GRANT CONNECT ON DATABASE :"database" TO :"api_user";
