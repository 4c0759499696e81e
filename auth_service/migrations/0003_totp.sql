-- TOTP second factor (CONTRACT §6): one credential per subject, recovery codes.
--
-- `secret` is a SecretBox blob (AES-256-GCM under AUTH_SECRET_KEYS, associated
-- data b"totp:" || subject), so neither the base32 secret nor its raw bytes are
-- stored, and a blob copied to another subject's row fails to open.
--
-- `last_step` is the RFC 6238 time step of the last accepted code. Accepting a
-- code is one compare-and-set,
--     UPDATE totp_credentials SET last_step = $step
--     WHERE subject = $1 AND state = 'confirmed' AND last_step < $step
-- so of two requests (any worker, any instance) presenting the same code exactly
-- one updates the row; the other finds the condition false (row locks serialise
-- the two updates and the loser re-checks the predicate on the new row version).
--
-- Recovery codes are stored only as argon2id hashes (salted, PHC strings);
-- `used_at` is set once, by a compare-and-set on `used_at IS NULL`.

CREATE TABLE IF NOT EXISTS totp_credentials (
    subject       text PRIMARY KEY,
    secret        bytea NOT NULL,
    state         text NOT NULL CHECK (state IN ('pending', 'confirmed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at  timestamptz,
    last_used_at  timestamptz,
    last_step     bigint NOT NULL DEFAULT -1,
    CHECK ((state = 'confirmed') = (confirmed_at IS NOT NULL))
);

CREATE TABLE IF NOT EXISTS totp_recovery_codes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject     text NOT NULL REFERENCES totp_credentials (subject) ON DELETE CASCADE,
    code_hash   text NOT NULL CHECK (code_hash LIKE '$argon2id$%'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);

CREATE INDEX IF NOT EXISTS totp_recovery_codes_subject ON totp_recovery_codes (subject);
