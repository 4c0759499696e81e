-- Privileges of the least-privilege runtime role `auth_app` (NOLOGIN): everything
-- `auth-service serve`, `keys rotate` and `audit verify` do in PostgreSQL, nothing
-- more. Not a versioned migration: `auth-service migrate` applies this whole file
-- after the versioned ones on every run (GRANT is idempotent), when the role
-- exists. Versioned files never name `auth_app`, so a database owner without
-- CREATEROLE can run every one of them; a table the runtime touches gets its
-- GRANT here.
--
-- Operators run the service as a login role that is a member of `auth_app` and
-- owns nothing, and run `auth-service migrate` as the schema owner:
--     CREATE ROLE auth_service LOGIN PASSWORD '...';
--     GRANT auth_app TO auth_service;

-- Assertion signing keys: load (SELECT), first key at start-up (INSERT),
-- `keys rotate` retires and prunes (UPDATE, DELETE).
GRANT SELECT, INSERT, UPDATE, DELETE ON signing_keys TO auth_app;

-- Audit trail: append and query only (the trigger refuses changes anyway).
GRANT SELECT, INSERT ON audit_events TO auth_app;
GRANT EXECUTE ON FUNCTION audit_ensure_partitions(timestamptz, integer) TO auth_app;

-- TOTP credentials and recovery codes.
GRANT SELECT, INSERT, UPDATE, DELETE ON totp_credentials, totp_recovery_codes TO auth_app;
