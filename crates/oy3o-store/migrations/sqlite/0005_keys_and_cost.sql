-- Keys, budgets and cost (issue #22).
-- `turns.cost_usd`: what the turn cost in US dollars, from its usage and the price table in
-- force when it ended (NULL: no usage, or a model without a price).
-- `api_keys`: the keys a team server accepts, by name; only the SHA-256 (hex) of the secret is
-- kept. `models` is a JSON array of globs (NULL: any model). A revoked key keeps its row (usage
-- by key still names it) with `revoked_at` set.
-- `key_spend`: dollars spent by a key in a budget period, by the period's start (Unix ms).
ALTER TABLE turns ADD COLUMN cost_usd REAL;

CREATE TABLE api_keys (
    name          TEXT PRIMARY KEY,
    hash          TEXT NOT NULL UNIQUE,
    models        TEXT,
    rpm           INTEGER,
    tpm           INTEGER,
    concurrent    INTEGER,
    budget_usd    REAL,
    budget_period TEXT,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

CREATE TABLE key_spend (
    key_name     TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    usd          REAL NOT NULL,
    PRIMARY KEY (key_name, period_start)
);
