-- Least-privilege PostgreSQL roles, run once by the superuser on a new cluster (psql variables:
-- owner_password, app_password, temporal_password, app_db). Berth's schema belongs to berth_owner,
-- which only the one-shot migrations use; the web and worker processes connect as berth_app, which
-- may read and write rows but not change the schema; Temporal has its own role and databases, and
-- neither side can connect to the other's.
\set ON_ERROR_STOP on
CREATE ROLE berth_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE berth_app LOGIN PASSWORD :'app_password';
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';

CREATE DATABASE :"app_db" OWNER berth_owner;
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
REVOKE ALL ON DATABASE :"app_db", temporal, temporal_visibility FROM PUBLIC;
GRANT CONNECT ON DATABASE :"app_db" TO berth_app;

\connect :"app_db"
ALTER SCHEMA public OWNER TO berth_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO berth_app;
-- Tables and sequences the migrations create: rows, never the schema.
ALTER DEFAULT PRIVILEGES FOR ROLE berth_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO berth_app;
ALTER DEFAULT PRIVILEGES FOR ROLE berth_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO berth_app;
