-- Accounts schema: users and their profiles, sign-in identities (password or OAuth), sessions.
-- Ids of users, identities and sessions are opaque 32-character strings, as Better Auth makes
-- them, so data imported from the original keeps its ids.

CREATE TABLE users (
    id             text PRIMARY KEY,
    -- Stored lower-cased; unique across users.
    email          text NOT NULL CONSTRAINT users_email_key UNIQUE,
    name           text NOT NULL,
    email_verified boolean NOT NULL DEFAULT false,
    image          text,
    -- Better Auth's extra field; never settable by clients.
    role           text NOT NULL DEFAULT 'user',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Keyset order for listing users.
CREATE INDEX users_created_at_idx ON users (created_at, id);

CREATE TABLE profiles (
    id           uuid PRIMARY KEY,
    user_id      text NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    display_name text NOT NULL,
    avatar_url   text,
    banner_url   text,
    bio          text,
    age          integer,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per way to sign in: provider 'credential' holds the argon2id password hash,
-- OAuth providers hold the provider's account id.
CREATE TABLE identities (
    id            text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id   text NOT NULL,
    account_id    text NOT NULL,
    password_hash text,
    scope         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT identities_provider_account_key UNIQUE (provider_id, account_id)
);

CREATE INDEX identities_user_id_idx ON identities (user_id);

-- Sessions are found by the SHA-256 of their token: a leaked table does not leak sessions.
CREATE TABLE sessions (
    id         text PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    ip_address text,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
