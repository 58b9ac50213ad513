-- Full-text index final turns only. A streaming turn is rewritten every ~100 ms while it grows;
-- each rewrite recomputed `to_tsvector` over its whole text and inserted into the GIN index.
-- Now `search` is NULL while a turn streams and computed once, when it ends (done, error,
-- cancelled or interrupted: recovery's UPDATE of `state` computes it too); the GIN index is
-- partial, so streaming rows never touch it (and their updates can stay HOT). Search finds a
-- turn once it ended; queries say `state <> 'streaming'` so the planner can use the index.
--
-- PostgreSQL 15 cannot change a generated column's expression: the column is made again (one
-- rewrite of the table, under the migrator's lock).

ALTER TABLE turns DROP COLUMN search;
ALTER TABLE turns ADD COLUMN search TSVECTOR GENERATED ALWAYS AS (
    CASE WHEN state <> 'streaming' THEN to_tsvector('simple', prompt || ' ' || answer) END
) STORED;
CREATE INDEX turns_search ON turns USING GIN (search) WHERE state <> 'streaming';
