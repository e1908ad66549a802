-- Federation. Peers: other co-ops' clusters whose edges may subscribe to this cluster's events
-- (`tolk peer add NAME`), each with a token stored hashed.
CREATE TABLE peers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
-- Each subscription of a peer to an event (one per event per peer edge), for usage by peer.
CREATE TABLE peer_subscriptions (
    session     TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    peer        TEXT NOT NULL,
    node        TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX peer_subscriptions_event ON peer_subscriptions (event_id);
-- An event whose floor and channels come from an event of a peer cluster: that cluster's URL,
-- the event's id there, and the peering token it issued (presented, so kept as is).
ALTER TABLE events ADD COLUMN peer_url TEXT;
ALTER TABLE events ADD COLUMN peer_event TEXT;
ALTER TABLE events ADD COLUMN peer_token TEXT;
