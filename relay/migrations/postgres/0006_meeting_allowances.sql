-- Which BigBlueButton meetings an organiser may take as an event's floor: exact meeting ids, or
-- id prefixes written with a trailing '*'. The admin manages them (`tolk organiser allow`).
CREATE TABLE meeting_allowances (
    organiser_id  BIGINT NOT NULL REFERENCES organisers (id),
    pattern       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (organiser_id, pattern)
);
