-- Pools across runs: a task in a pool runs only while it holds one of the pool's slots here.
-- A slot counts while its run's claim is the one it was taken under (epoch) and is live; the
-- next taker deletes any other. Taking one is a count-then-insert inside BEGIN IMMEDIATE.
CREATE TABLE IF NOT EXISTS pool_slots (
    pool TEXT NOT NULL,
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    map_index INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    taken_at REAL NOT NULL,
    PRIMARY KEY (pool, run_id, task, map_index)
);
CREATE INDEX IF NOT EXISTS pool_slots_by_run ON pool_slots (run_id);
