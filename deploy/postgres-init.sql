-- What a DBA does once for auth-service, as on a managed PostgreSQL
-- (docker-compose.yml runs it as the superuser when the data volume is new).
--
--   auth_owner    owns the database and holds nothing else (no superuser, no
--                 CREATEROLE): `auth-service migrate` connects as it
--                 (AUTH_MIGRATE_DATABASE_URL) and grants auth_app its privileges.
--   auth_app      NOLOGIN: exactly the runtime's privileges
--                 (auth_service/migrations/runtime_grants.sql).
--   auth_service  LOGIN, a member of auth_app, owns nothing: `auth-service serve`
--                 connects as it (AUTH_DATABASE_URL).
--
-- The passwords are development values; use real secrets elsewhere.
CREATE ROLE auth_owner LOGIN PASSWORD 'auth_owner' NOSUPERUSER NOCREATEROLE NOCREATEDB;
CREATE DATABASE auth OWNER auth_owner;
CREATE ROLE auth_app NOLOGIN;
CREATE ROLE auth_service LOGIN PASSWORD 'auth_service' NOSUPERUSER NOCREATEROLE NOCREATEDB
    IN ROLE auth_app;
