-- An RTP floor's allow-list: addresses and networks, separated by commas (empty: any source).
ALTER TABLE events ADD COLUMN rtp_allow TEXT NOT NULL DEFAULT '';
