-- Keyed audit chain (CONTRACT §9): each event records the id of the AUTH_SECRET_KEYS
-- entry whose HKDF-derived key MAC'd it (HMAC-SHA-256, see auth_service/audit/chain.py).
-- The key itself never reaches the database.
--
-- Existing rows keep key_id NULL: they belong to the old unkeyed scheme (plain SHA-256).
-- They are not rewritten (the table is append-only) and cannot be vouched for against
-- the table owner after the fact: `auth-service audit verify` reports them as a break
-- unless the auditor names their chains with `--accept-unkeyed CHAIN_ID`.
ALTER TABLE audit_events ADD COLUMN key_id text;
