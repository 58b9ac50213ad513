-- Full-text index final turns only. A streaming turn is rewritten every ~100 ms while it grows,
-- and each rewrite cost the FTS5 index a 'delete' and an insert of its whole text (a quarter of
-- the writer's CPU); now a turn is indexed once, when it ends (done, error, cancelled or
-- interrupted: recovery's UPDATE of `state` indexes it too). Search finds a turn once it ended.
--
-- The index holds exactly the rows whose state is not 'streaming': an external-content 'delete'
-- must name text that was indexed, so each trigger deletes only what it indexed.

DROP TRIGGER turns_fts_insert;
DROP TRIGGER turns_fts_delete;
DROP TRIGGER turns_fts_update;

-- 0001 indexed streaming rows too (with their current text: its update trigger kept them in
-- step): take them out, so the rule above holds for every row.
INSERT INTO turns_fts (turns_fts, rowid, prompt, answer)
    SELECT 'delete', rowid, prompt, answer FROM turns WHERE state = 'streaming';

CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns WHEN new.state <> 'streaming' BEGIN
    INSERT INTO turns_fts (rowid, prompt, answer) VALUES (new.rowid, new.prompt, new.answer);
END;
CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns WHEN old.state <> 'streaming' BEGIN
    INSERT INTO turns_fts (turns_fts, rowid, prompt, answer) VALUES ('delete', old.rowid, old.prompt, old.answer);
END;
-- One trigger, the 'delete' before the insert (the order of two triggers is not specified).
-- Updates of a streaming row that stays streaming, the most common write, do nothing here.
CREATE TRIGGER turns_fts_update AFTER UPDATE OF prompt, answer, state ON turns
    WHEN old.state <> 'streaming' OR new.state <> 'streaming' BEGIN
    INSERT INTO turns_fts (turns_fts, rowid, prompt, answer)
        SELECT 'delete', old.rowid, old.prompt, old.answer WHERE old.state <> 'streaming';
    INSERT INTO turns_fts (rowid, prompt, answer)
        SELECT new.rowid, new.prompt, new.answer WHERE new.state <> 'streaming';
END;
