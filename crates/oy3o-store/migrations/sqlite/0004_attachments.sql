-- Attachments stored once by content (issue #20): a turn's `parts` keeps an inline image,
-- document or sound as `"source": {"sha256": DIGEST}` and its `size`; the bytes live here once
-- under the SHA-256 of their content, however many turns send them.
CREATE TABLE attachments (
    digest TEXT PRIMARY KEY,
    mime TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
