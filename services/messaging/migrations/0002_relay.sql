-- The relay (docs/event-pipeline.md): thread events waiting for JetStream's acknowledgement
-- live in a narrow table of their own, so publishing one deletes a small row instead of
-- rewriting the stored event; threads are spread over 64 partitions that messaging replicas
-- lease, so each thread has one publisher at a time.

CREATE TABLE thread_outbox (
    -- The thread's partition: fixed by its id, computed here so every replica agrees.
    part       smallint GENERATED ALWAYS AS ((get_byte(uuid_send(thread_id), 15) % 64)::smallint) STORED,
    thread_id  uuid NOT NULL,
    seq        bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (part, thread_id, seq)
);

INSERT INTO thread_outbox (thread_id, seq, created_at)
    SELECT thread_id, seq, created_at FROM thread_events WHERE published_at IS NULL;

DROP INDEX thread_events_pending_idx;
ALTER TABLE thread_events DROP COLUMN published_at;
-- Always chat.thread.<thread_id>: the relay derives it.
ALTER TABLE thread_events DROP COLUMN subject;

-- Who publishes which partition, until when (renewed every second by the holder).
CREATE TABLE relay_leases (
    part       smallint PRIMARY KEY,
    owner      uuid,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO relay_leases (part) SELECT generate_series(0, 63);

-- Live relays (each messaging replica's heartbeat): the fair share of partitions is 64 / live.
CREATE TABLE relay_members (
    replica uuid PRIMARY KEY,
    seen_at timestamptz NOT NULL
);
