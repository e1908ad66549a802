-- Interpreters (booth links) and the usage facts recorded as an event happens.
-- Times in these tables are Unix milliseconds (UTC).
CREATE TABLE interpreters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL REFERENCES events (id),
    name         TEXT NOT NULL,
    languages    TEXT NOT NULL,              -- JSON array: one language, or two for an A/B booth
    token_hash   TEXT NOT NULL UNIQUE,       -- SHA-256 of the booth token
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX interpreters_event ON interpreters (event_id);

-- An interpreter on air in a language, from started_at to ended_at (NULL while on air).
CREATE TABLE on_air (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL,
    interpreter_id INTEGER NOT NULL,
    language       TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    ended_at       BIGINT
);
CREATE INDEX on_air_event ON on_air (event_id);

-- A listener on a channel, from joined_at to left_at (a channel switch closes one row, opens another).
CREATE TABLE listening (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    language    TEXT NOT NULL,
    joined_at   BIGINT NOT NULL,
    left_at     BIGINT
);
CREATE INDEX listening_event ON listening (event_id);
CREATE INDEX listening_session ON listening (session_id);

-- Handovers between booth partners, and slow-down signals to the organiser.
CREATE TABLE booth_signals (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         TEXT NOT NULL,
    kind             TEXT NOT NULL,          -- 'handover' | 'slow-down'
    language         TEXT,
    interpreter_id   INTEGER NOT NULL,       -- who took the air / who asked to slow down
    from_interpreter INTEGER,                -- for a handover: who gave the air
    at               BIGINT NOT NULL
);
CREATE INDEX booth_signals_event ON booth_signals (event_id);
