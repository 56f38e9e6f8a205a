-- Messaging schema: threads, messages, and each thread's event log, which is also the outbox
-- the relay publishes from (hilo_kit::outbox).

CREATE TABLE threads (
    id          uuid PRIMARY KEY,
    -- A channels channel id (no cross-schema foreign key; deletion arrives as an event).
    channel_id  uuid NOT NULL,
    name        varchar(100) NOT NULL,
    description text,
    created_by  text NOT NULL,
    is_archived boolean NOT NULL DEFAULT false,
    -- Seq of the latest event: incremented under the row lock, so seqs have no gaps.
    last_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX threads_channel_idx ON threads (channel_id, created_at DESC);

CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    thread_id       uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    sender_id       text NOT NULL,
    content         text NOT NULL,
    attachments     jsonb NOT NULL DEFAULT '[]',
    -- Seq of this message's NEW_MESSAGE event.
    seq             bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    -- A sender's retry key (Idempotency-Key or nonce) and the hash of what it first carried.
    idempotency_key text,
    request_hash    text
);

CREATE UNIQUE INDEX messages_thread_seq_idx ON messages (thread_id, seq);
CREATE UNIQUE INDEX messages_idempotency_idx ON messages (sender_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Every stored change of a thread, with its client frame (the published bytes).
CREATE TABLE thread_events (
    id           uuid PRIMARY KEY,
    thread_id    uuid NOT NULL,
    seq          bigint NOT NULL,
    type         text NOT NULL,
    subject      text NOT NULL,
    payload      bytea NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    CONSTRAINT thread_events_seq_key UNIQUE (thread_id, seq)
);

CREATE INDEX thread_events_pending_idx ON thread_events (created_at, id) WHERE published_at IS NULL;
