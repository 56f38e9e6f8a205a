-- Events committed with their change (a session revoked, a user deleted), published to the
-- JetStream stream CHAT_EVENTS by the relay (hilo_kit::outbox), so realtime closes the
-- sockets of an ended session and channels forgets a deleted user even if NATS was down.
CREATE TABLE outbox (
    id           uuid PRIMARY KEY,
    subject      text NOT NULL,
    payload      bytea NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

CREATE INDEX outbox_pending_idx ON outbox (created_at, id) WHERE published_at IS NULL;
