-- Viewers' watch state is cached too (resume points behind the title detail), so
-- its changes are announced like the others': `watch:<user id>:<content id>`.
CREATE FUNCTION keyframe_notify_watch() RETURNS trigger AS $$
DECLARE
    rec record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        rec := OLD;
    ELSE
        rec := NEW;
    END IF;
    PERFORM pg_notify('keyframe_changes', 'watch:' || rec.user_id || ':' || rec.content_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER watch_state_changes AFTER INSERT OR DELETE
    ON watch_state FOR EACH ROW EXECUTE FUNCTION keyframe_notify_watch();
-- Only what the cache holds: the resume point and the watched flag.
CREATE TRIGGER watch_state_updates AFTER UPDATE ON watch_state FOR EACH ROW
    WHEN (OLD.resume_ms IS DISTINCT FROM NEW.resume_ms OR OLD.played IS DISTINCT FROM NEW.played)
    EXECUTE FUNCTION keyframe_notify_watch();
