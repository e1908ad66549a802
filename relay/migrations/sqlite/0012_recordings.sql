-- Recording every language channel. An event's plan: which channels (NULL: not recorded; '*':
-- all; else a JSON array of languages) and whether recording is on now.
ALTER TABLE events ADD COLUMN recording_channels TEXT;
ALTER TABLE events ADD COLUMN recording_on BIGINT NOT NULL DEFAULT 0;
-- Whether an interpreter agreed to be recorded (0: no, the default).
ALTER TABLE interpreters ADD COLUMN recording_consent BIGINT NOT NULL DEFAULT 0;
-- One Ogg Opus file per recorded channel and part (a part: one stretch of recording; a stop
-- and start, or a restart, begins the next). Times are Unix milliseconds.
CREATE TABLE recordings (
    id           TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL,
    part         BIGINT NOT NULL,
    language     TEXT NOT NULL,
    node         TEXT NOT NULL,
    file         TEXT NOT NULL,              -- relative to the node's recording directory
    started_at   BIGINT NOT NULL,            -- the part's time base: every channel's 0
    duration_ms  BIGINT NOT NULL DEFAULT 0,
    size         BIGINT NOT NULL DEFAULT 0,
    state        TEXT NOT NULL,              -- 'recording' | 'done' | 'interrupted' | 'failed'
    problem      TEXT,
    ended_at     BIGINT
);
CREATE INDEX recordings_event ON recordings (event_id);
-- Who was on air in a recorded channel, over which stretch of its file (ms from its start);
-- consent 0: the stretch is silence in the file.
CREATE TABLE recording_stretches (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    recording    TEXT NOT NULL,
    interpreter  BIGINT NOT NULL,
    consent      BIGINT NOT NULL,
    from_ms      BIGINT NOT NULL,
    to_ms        BIGINT
);
CREATE INDEX recording_stretches_recording ON recording_stretches (recording);
