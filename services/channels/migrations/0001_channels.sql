-- Channels schema: channels, their members and roles, invites, and the outbox of events.

CREATE TYPE channel_role AS ENUM ('member', 'moderator', 'admin');

CREATE TABLE channels (
    id          uuid PRIMARY KEY,
    name        varchar(100) NOT NULL,
    description text,
    is_private  boolean NOT NULL DEFAULT false,
    image_url   text,
    banner_url  text,
    category    varchar(50) NOT NULL DEFAULT 'General',
    -- The creator; an opaque accounts user id (no cross-schema foreign key).
    owner_id    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX channels_listing_idx ON channels (created_at, id);

CREATE TABLE channel_members (
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    role       channel_role NOT NULL DEFAULT 'member',
    joined_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT channel_members_pkey PRIMARY KEY (channel_id, user_id)
);

CREATE INDEX channel_members_user_idx ON channel_members (user_id, joined_at);

-- Invite codes for private (or public) channels; `uses` counts redemptions.
CREATE TABLE channel_invites (
    code       text PRIMARY KEY,
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    created_by text NOT NULL,
    expires_at timestamptz NOT NULL,
    max_uses   integer,
    uses       integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Events committed with their change, published to JetStream by the relay (hilo_kit::outbox).
CREATE TABLE outbox (
    id           uuid PRIMARY KEY,
    subject      text NOT NULL,
    payload      bytea NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

CREATE INDEX outbox_pending_idx ON outbox (created_at, id) WHERE published_at IS NULL;
