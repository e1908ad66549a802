-- Events: one row per reserved event. Times are Unix seconds (UTC).
CREATE TABLE events (
    id                  TEXT PRIMARY KEY NOT NULL,
    title               TEXT NOT NULL,
    floor_language      TEXT NOT NULL,
    languages           TEXT NOT NULL,
    starts_at           BIGINT NOT NULL,
    ends_at             BIGINT NOT NULL,
    expected_listeners  BIGINT NOT NULL,
    floor_kind          TEXT NOT NULL,
    rtp_port            BIGINT,
    floor_token_hash    TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    cancelled_at        BIGINT
);
CREATE INDEX events_window ON events (starts_at, ends_at);
