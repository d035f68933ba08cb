-- Changes made by any connection, for the hot caches of every catalog process on
-- this database file (PostgreSQL announces the same with NOTIFY). Each catalog
-- polls `PRAGMA data_version` and reads the rows past the last one it saw; rows are
-- kept about a minute (the catalogs trim them). `kind` and `id` are a NOTIFY
-- payload's two halves: content, user, session.
CREATE TABLE change_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX change_log_at ON change_log (at);

CREATE TRIGGER content_log_insert AFTER INSERT ON content
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', NEW.id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER content_log_update AFTER UPDATE OF title, description, kind, updated_at ON content
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', NEW.id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER content_log_delete AFTER DELETE ON content
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', OLD.id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER content_categories_log_insert AFTER INSERT ON content_categories
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', NEW.content_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER content_categories_log_update AFTER UPDATE ON content_categories
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', NEW.content_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER content_categories_log_delete AFTER DELETE ON content_categories
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', OLD.content_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER rights_log_insert AFTER INSERT ON rights
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', NEW.content_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER rights_log_update AFTER UPDATE ON rights
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', NEW.content_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER rights_log_delete AFTER DELETE ON rights
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', OLD.content_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER assets_log_insert_content AFTER INSERT ON assets
    WHEN NEW.content_id IS NOT NULL
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', NEW.content_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER assets_log_insert_user AFTER INSERT ON assets
    WHEN NEW.content_id IS NULL AND NEW.user_id IS NOT NULL
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('user', NEW.user_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER assets_log_update_content AFTER UPDATE ON assets
    WHEN NEW.content_id IS NOT NULL
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', NEW.content_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER assets_log_update_user AFTER UPDATE ON assets
    WHEN NEW.content_id IS NULL AND NEW.user_id IS NOT NULL
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('user', NEW.user_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER assets_log_delete_content AFTER DELETE ON assets
    WHEN OLD.content_id IS NOT NULL
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('content', OLD.content_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER assets_log_delete_user AFTER DELETE ON assets
    WHEN OLD.content_id IS NULL AND OLD.user_id IS NOT NULL
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('user', OLD.user_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER users_log_update AFTER UPDATE ON users
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('user', NEW.id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER users_log_delete AFTER DELETE ON users
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('user', OLD.id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER sessions_log_delete AFTER DELETE ON sessions
BEGIN
    INSERT INTO change_log (kind, id, at) VALUES ('session', OLD.token_hash, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;
