-- Organiser accounts: each sees and manages only its own events; the admin token sees all.
CREATE TABLE organisers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
ALTER TABLE events ADD COLUMN organiser_id INTEGER REFERENCES organisers (id);
