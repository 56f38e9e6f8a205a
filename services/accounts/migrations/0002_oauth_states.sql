-- OAuth sign-ins in flight: one row per started sign-in, deleted by its callback (single use).
-- The `state` sent to the provider is `<id>.<secret>`: the row is found by its id and only the
-- SHA-256 of the secret is kept, compared in constant time. Rows live 10 minutes; expired ones
-- are swept whenever a new sign-in starts.
CREATE TABLE oauth_states (
    id                    text PRIMARY KEY,
    secret_hash           text NOT NULL,
    provider_id           text NOT NULL,
    -- PKCE (S256) code verifier, sent with the code exchange.
    code_verifier         text NOT NULL,
    -- The redirect URI given to the provider; the exchange must repeat it exactly.
    redirect_uri          text NOT NULL,
    callback_url          text NOT NULL,
    error_callback_url    text,
    new_user_callback_url text,
    expires_at            timestamptz NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX oauth_states_expires_at_idx ON oauth_states (expires_at);
