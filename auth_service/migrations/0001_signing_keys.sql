-- Keys this service signs X-Auth-Assertion with (ES256), shared by every worker
-- and instance (auth_service/tokens/keys.py).
--
-- private_enc: the PKCS#8 DER private key, encrypted with AES-256-GCM under
-- AUTH_SECRET_KEYS (auth_service/crypto.py; enc_key_id names the key used, aad
-- binds the blob to its kid). public_jwk: the public JWK as published.
--
-- Life cycle, decided by timestamps alone (no cron):
--   created_at <= now < activated_at   published, not yet used to sign
--   activated_at <= now                signs, while it is the latest activated key
--   retired_at <= now                  no longer published nor used; `rotate` sets
--                                      it to the successor's activation + assertion
--                                      lifetime + margin; set it to now() by hand to
--                                      withdraw a compromised key at once.
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    alg          text NOT NULL DEFAULT 'ES256' CHECK (alg = 'ES256'),
    public_jwk   jsonb NOT NULL,
    private_enc  bytea NOT NULL,
    enc_key_id   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz NOT NULL,
    retired_at   timestamptz
);
