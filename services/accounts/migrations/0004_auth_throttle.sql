-- Accounts' own sign-in and sign-up budgets (AUTH_THROTTLE, docs/security.md): attempts per
-- key (an email, a caller's address) in fixed windows. Unlogged: after a crash the counts
-- start over, which costs nothing but a fresh window.
CREATE UNLOGGED TABLE auth_throttle (
    key          text NOT NULL,
    window_start bigint NOT NULL,
    hits         integer NOT NULL DEFAULT 1,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX auth_throttle_expires_idx ON auth_throttle (expires_at);
