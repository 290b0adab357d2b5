-- kind tells a catch-up fetch from a peer ('fetch') from a repair gitmesh
-- made by itself after a writer died ('heal'); result says what was done.
ALTER TABLE sync_log ADD COLUMN kind text NOT NULL DEFAULT 'fetch';
