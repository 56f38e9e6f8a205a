-- A deleted user's invites are deleted (consumer of chat.events.user.deleted): find them by
-- their creator without scanning every invite.
CREATE INDEX channel_invites_created_by_idx ON channel_invites (created_by);
