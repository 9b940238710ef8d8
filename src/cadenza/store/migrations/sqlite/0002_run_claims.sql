-- Claims: a run has at most one owner (host:pid:token) at a time, and every write its owner
-- makes is fenced on the run's epoch, which each claim bumps.
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
