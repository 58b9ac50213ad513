-- oy3o store, PostgreSQL: chats, turns (with a tsvector + GIN index), chain runs and live
-- instances. Times are Unix milliseconds; JSON columns are jsonb.

CREATE TABLE chats (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    name       TEXT,
    model      TEXT,
    context    TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- NULL names (one-shot prompts) never collide.
CREATE UNIQUE INDEX chats_owner_name ON chats (owner, name);
CREATE INDEX chats_owner_updated ON chats (owner, updated_at);

CREATE TABLE turns (
    id             TEXT PRIMARY KEY,
    chat_id        TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    owner          TEXT NOT NULL,
    prompt         TEXT NOT NULL,
    answer         TEXT NOT NULL DEFAULT '',
    reasoning      TEXT NOT NULL DEFAULT '',
    events         JSONB NOT NULL DEFAULT '[]',
    usage          JSONB,
    model          TEXT,
    first_token_ms BIGINT,
    elapsed_ms     BIGINT,
    state          TEXT NOT NULL,
    error          TEXT,
    instance       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    -- 'simple': no stemming or stop words, so search works the same in every language.
    search         TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', prompt || ' ' || answer)) STORED
);
CREATE INDEX turns_chat_seq ON turns (chat_id, seq);
CREATE INDEX turns_owner_created ON turns (owner, created_at);
CREATE INDEX turns_streaming ON turns (instance) WHERE state = 'streaming';
CREATE INDEX turns_search ON turns USING GIN (search);

CREATE TABLE chain_runs (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    name       TEXT NOT NULL,
    result     JSONB NOT NULL,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX chain_runs_owner_created ON chain_runs (owner, created_at);

CREATE TABLE instances (
    id         TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);
