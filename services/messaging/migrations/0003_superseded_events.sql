-- Replay never hands out text its author replaced or deleted (docs/security.md): each
-- message event names its message, so an edit or a deletion can empty the events it
-- supersedes. They keep their seq (the log stays gap-free) and say `"redacted": true`.

ALTER TABLE thread_events ADD COLUMN message_id uuid;

UPDATE thread_events
SET message_id = (convert_from(payload, 'UTF8')::jsonb -> 'payload' ->> 'id')::uuid
WHERE type IN ('NEW_MESSAGE', 'MESSAGE_UPDATED');

CREATE INDEX thread_events_message_idx ON thread_events (message_id) WHERE message_id IS NOT NULL;

-- The history written before this migration: events of deleted messages, and every event
-- of an edited message but its last.
UPDATE thread_events e
SET payload = convert_to(jsonb_set(jsonb_set(jsonb_set(convert_from(e.payload, 'UTF8')::jsonb,
      '{payload,content}', '""'), '{payload,attachments}', '[]'), '{payload,redacted}', 'true')::text,
    'UTF8')
WHERE e.message_id IS NOT NULL
  AND (NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id)
       OR e.seq < (SELECT max(x.seq) FROM thread_events x WHERE x.message_id = e.message_id));
