-- Interpretation started inside a BBB meeting (by a moderator in the plugin, or from the meeting's
-- metadata): the meeting's internal id, which bbb-web names in its session checks.
ALTER TABLE events ADD COLUMN bbb_room TEXT;
CREATE INDEX events_bbb_room ON events (bbb_room);
-- An interpreter named by a moderator in a BBB meeting: their BBB user id (internal, `w_…`).
ALTER TABLE interpreters ADD COLUMN bbb_user_id TEXT;
