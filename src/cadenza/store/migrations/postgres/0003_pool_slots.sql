-- Pools across runs: a task in a pool runs only while it holds one of the pool's slots here.
-- A slot counts while its run's claim is the one it was taken under (epoch) and is live; the
-- next taker deletes any other. Taking one is a count-then-insert under an advisory lock on
-- the pool's name (PostgresStore.take_slot).
CREATE TABLE IF NOT EXISTS pool_slots (
    pool TEXT COLLATE "C" NOT NULL,
    run_id TEXT COLLATE "C" NOT NULL,
    task TEXT COLLATE "C" NOT NULL,
    map_index INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    taken_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (pool, run_id, task, map_index)
);
CREATE INDEX IF NOT EXISTS pool_slots_by_run ON pool_slots (run_id);
