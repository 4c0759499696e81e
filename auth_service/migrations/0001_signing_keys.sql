-- Keys this service signs X-Auth-Assertion with (ES256). The private key is
-- encrypted with AES-GCM under AUTH_SECRET_KEYS (enc_key_id names the key used).
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    alg          text NOT NULL DEFAULT 'ES256',
    public_jwk   jsonb NOT NULL,
    private_enc  bytea NOT NULL,
    enc_key_id   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    retired_at   timestamptz
);
CREATE INDEX signing_keys_active ON signing_keys (activated_at DESC) WHERE retired_at IS NULL;
