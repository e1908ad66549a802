-- Mix mode: the floor under the interpretation at this level in dB (NULL: pass-through).
ALTER TABLE events ADD COLUMN floor_under_db REAL;
