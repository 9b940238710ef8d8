-- Events in commit order, written once.
--
-- An event's id is handed out under a lock each writing transaction takes just before it
-- inserts its events and holds until it commits (see PostgresStore.apply), so ids are given
-- in commit order: a follower that has seen id N has seen every id below N, and one reading
-- `id > N` misses nothing. The identity's sequence must hand out values in call order across
-- sessions for that: no per-session cache (CACHE 1, the default, said again here).
ALTER TABLE events ALTER COLUMN id SET CACHE 1;
-- key: the writer's own name for an event (PostgresStore gives one to each event it writes),
-- so that a commit retried after its outcome was lost writes none of its events twice.
-- Events written before this migration have none.
ALTER TABLE events ADD COLUMN key TEXT COLLATE "C";
CREATE UNIQUE INDEX events_once ON events (key);
