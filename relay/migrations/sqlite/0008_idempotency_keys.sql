-- Idempotency-Key of event creation: a retry with the same key and the same request gets the
-- first answer again (the floor token included, so a lost answer can be fetched again); the
-- same key with another request is refused. Written in the transaction that books the event;
-- kept 24 hours.
CREATE TABLE idempotency_keys (
    owner         TEXT NOT NULL,       -- 'admin', or 'organiser:<id>'
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,       -- SHA-256 of the request as JSON
    event_id      TEXT NOT NULL REFERENCES events (id),
    response      TEXT NOT NULL,       -- the 201 body
    created_at    BIGINT NOT NULL,     -- Unix seconds
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
