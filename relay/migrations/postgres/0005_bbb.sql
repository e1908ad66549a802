-- An event's floor may be a BigBlueButton meeting (floor_kind 'bbb'): the meeting's ID on the
-- node's BBB server.
ALTER TABLE events ADD COLUMN bbb_meeting_id TEXT;
