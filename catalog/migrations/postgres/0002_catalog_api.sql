-- The catalog API (issue 6): full-text search, a views counter, change notifications.

-- A placeholder popularity signal for the "trending" sort, bumped on each playback
-- URL issued, until watch history provides a real one.
ALTER TABLE content ADD COLUMN views BIGINT NOT NULL DEFAULT 0;
CREATE INDEX content_views ON content (views);
CREATE INDEX content_title ON content (title);

-- Full-text search over titles (weight A) and descriptions (weight B). The 'simple'
-- configuration (no stemming) matches what SQLite's FTS5 unicode61 tokenizer does,
-- so both databases find the same titles for the same words.
ALTER TABLE content ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', coalesce(title, '')), 'A') ||
    setweight(to_tsvector('simple', coalesce(description, '')), 'B')
) STORED;
CREATE INDEX content_search ON content USING GIN (search);

CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX assets_user_role ON assets (user_id, role);

-- Every change to what the catalog caches is announced on the channel
-- 'keyframe_changes' as 'content:<id>' or 'user:<id>', whoever writes it (another
-- catalog process, `keyframe ingest`), so every catalog's in-process cache stays
-- current without guessing TTLs.
CREATE FUNCTION keyframe_notify_change() RETURNS trigger AS $$
DECLARE
    kind text;
    id text;
    rec record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        rec := OLD;
    ELSE
        rec := NEW;
    END IF;
    IF TG_TABLE_NAME = 'content' THEN
        kind := 'content'; id := rec.id;
    ELSIF TG_TABLE_NAME = 'users' THEN
        kind := 'user'; id := rec.id;
    ELSIF TG_TABLE_NAME = 'sessions' THEN
        kind := 'session'; id := rec.token_hash;
    ELSIF TG_TABLE_NAME = 'assets' THEN
        IF rec.content_id IS NOT NULL THEN
            kind := 'content'; id := rec.content_id;
        ELSE
            kind := 'user'; id := rec.user_id;
        END IF;
    ELSE
        kind := 'content'; id := rec.content_id;
    END IF;
    IF id IS NOT NULL THEN
        PERFORM pg_notify('keyframe_changes', kind || ':' || id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- The views counter is not cached, so updates of it alone are not announced.
CREATE TRIGGER content_changes AFTER INSERT OR DELETE OR UPDATE OF title, description, kind, updated_at
    ON content FOR EACH ROW EXECUTE FUNCTION keyframe_notify_change();
CREATE TRIGGER content_categories_changes AFTER INSERT OR UPDATE OR DELETE
    ON content_categories FOR EACH ROW EXECUTE FUNCTION keyframe_notify_change();
CREATE TRIGGER rights_changes AFTER INSERT OR UPDATE OR DELETE
    ON rights FOR EACH ROW EXECUTE FUNCTION keyframe_notify_change();
CREATE TRIGGER assets_changes AFTER INSERT OR UPDATE OR DELETE
    ON assets FOR EACH ROW EXECUTE FUNCTION keyframe_notify_change();
CREATE TRIGGER users_changes AFTER UPDATE OR DELETE
    ON users FOR EACH ROW EXECUTE FUNCTION keyframe_notify_change();
CREATE TRIGGER sessions_changes AFTER DELETE
    ON sessions FOR EACH ROW EXECUTE FUNCTION keyframe_notify_change();
