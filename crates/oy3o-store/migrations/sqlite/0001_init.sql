-- oy3o store, SQLite: chats, turns (with an FTS5 index), chain runs and live instances.
-- Times are Unix milliseconds; JSON columns hold text.

CREATE TABLE chats (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    name       TEXT,
    model      TEXT,
    context    TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- NULL names (one-shot prompts) never collide.
CREATE UNIQUE INDEX chats_owner_name ON chats (owner, name);
CREATE INDEX chats_owner_updated ON chats (owner, updated_at);

CREATE TABLE turns (
    id             TEXT PRIMARY KEY,
    chat_id        TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    owner          TEXT NOT NULL,
    prompt         TEXT NOT NULL,
    answer         TEXT NOT NULL DEFAULT '',
    reasoning      TEXT NOT NULL DEFAULT '',
    events         TEXT NOT NULL DEFAULT '[]',
    usage          TEXT,
    model          TEXT,
    first_token_ms INTEGER,
    elapsed_ms     INTEGER,
    state          TEXT NOT NULL,
    error          TEXT,
    instance       TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX turns_chat_seq ON turns (chat_id, seq);
CREATE INDEX turns_owner_created ON turns (owner, created_at);
CREATE INDEX turns_streaming ON turns (instance) WHERE state = 'streaming';

-- Full-text search over prompt and answer, kept in step by triggers (external content table).
CREATE VIRTUAL TABLE turns_fts USING fts5 (prompt, answer, content = 'turns', content_rowid = 'rowid');
CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns BEGIN
    INSERT INTO turns_fts (rowid, prompt, answer) VALUES (new.rowid, new.prompt, new.answer);
END;
CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
    INSERT INTO turns_fts (turns_fts, rowid, prompt, answer) VALUES ('delete', old.rowid, old.prompt, old.answer);
END;
CREATE TRIGGER turns_fts_update AFTER UPDATE OF prompt, answer ON turns BEGIN
    INSERT INTO turns_fts (turns_fts, rowid, prompt, answer) VALUES ('delete', old.rowid, old.prompt, old.answer);
    INSERT INTO turns_fts (rowid, prompt, answer) VALUES (new.rowid, new.prompt, new.answer);
END;

CREATE TABLE chain_runs (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    name       TEXT NOT NULL,
    result     TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX chain_runs_owner_created ON chain_runs (owner, created_at);

CREATE TABLE instances (
    id         TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);
