-- Usage facts are written in batches by one writer per node; each batch also stamps the node's
-- heartbeat. After a crash the node closes its own open listening and on-air intervals at its
-- last heartbeat (the last moment it is known to have been running), never another node's.
ALTER TABLE listening ADD COLUMN node TEXT;
ALTER TABLE on_air ADD COLUMN node TEXT;
CREATE INDEX listening_open ON listening (node, left_at);
CREATE INDEX on_air_open ON on_air (node, ended_at);
CREATE TABLE usage_heartbeats (
    node  TEXT PRIMARY KEY NOT NULL,
    at    BIGINT NOT NULL              -- Unix milliseconds
);
