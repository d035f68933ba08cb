-- The catalog API (issue 6): full-text search, a views counter, avatar lookups.

-- A placeholder popularity signal for the "trending" sort, bumped on each playback
-- URL issued, until watch history provides a real one.
ALTER TABLE content ADD COLUMN views BIGINT NOT NULL DEFAULT 0;
CREATE INDEX content_views ON content (views);
CREATE INDEX content_title ON content (title);

-- Full-text search over titles and descriptions. The content table's rowid is not
-- stable (its key is text), so the index carries the id itself and triggers keep it
-- in step with every write, whoever makes it.
CREATE VIRTUAL TABLE content_fts USING fts5(
    content_id UNINDEXED,
    title,
    description,
    tokenize = 'unicode61 remove_diacritics 2'
);

INSERT INTO content_fts (content_id, title, description)
    SELECT id, title, description FROM content;

CREATE TRIGGER content_fts_insert AFTER INSERT ON content BEGIN
    INSERT INTO content_fts (content_id, title, description)
        VALUES (new.id, new.title, new.description);
END;

CREATE TRIGGER content_fts_delete AFTER DELETE ON content BEGIN
    DELETE FROM content_fts WHERE content_id = old.id;
END;

CREATE TRIGGER content_fts_update AFTER UPDATE OF id, title, description ON content BEGIN
    DELETE FROM content_fts WHERE content_id = old.id;
    INSERT INTO content_fts (content_id, title, description)
        VALUES (new.id, new.title, new.description);
END;

CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX assets_user_role ON assets (user_id, role);
