-- Watch history, counters, trending and recommendations (issue 7).

-- The event log becomes partitioned by event time. Nothing wrote the 0001 table, so
-- it is recreated rather than migrated. Rows land in the DEFAULT partition until an
-- operator adds ranges, e.g. monthly:
--   CREATE TABLE watch_events_2025_07 PARTITION OF watch_events
--       FOR VALUES FROM (1751328000000) TO (1754006400000);
-- and old months go with DROP TABLE (after `keyframe recommend` no longer needs
-- them). The key must contain the partition column, so it is (user, session, seq,
-- at); the writer deduplicates on (user, session, seq) itself before inserting.
-- Each row also keeps what the fold decided for it (region, watch time it added,
-- whether it counted as a view) so that a privacy delete can take that back.
DROP TABLE watch_events;
CREATE TABLE watch_events (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    content_id TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    position_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    watched_ms BIGINT NOT NULL DEFAULT 0,
    counted_view BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, session_id, seq, at)
) PARTITION BY RANGE (at);
CREATE TABLE watch_events_default PARTITION OF watch_events DEFAULT;
CREATE INDEX watch_events_at ON watch_events (at);
CREATE INDEX watch_events_user_content ON watch_events (user_id, content_id);
CREATE INDEX watch_events_user_at ON watch_events (user_id, at);
CREATE INDEX watch_events_content ON watch_events (content_id);

-- Per (user, title): the fold of that viewer's events for that title.
CREATE TABLE watch_state (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_id TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    position_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    resume_ms BIGINT,
    played BIGINT NOT NULL,
    play_count BIGINT NOT NULL,
    watched_ms BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    last_session TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    region TEXT NOT NULL,
    hidden BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, content_id)
);
CREATE INDEX watch_state_recent ON watch_state (user_id, last_at);
CREATE INDEX watch_state_content ON watch_state (content_id);

-- Materialized counters, kept current by the writer from the event stream.
CREATE TABLE content_stats (
    content_id TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    views BIGINT NOT NULL,
    watch_ms BIGINT NOT NULL,
    PRIMARY KEY (content_id, region)
);

-- Time-decayed popularity per title and region ('*' = every region), stored as
-- ln(sum of exp(at * ln2 / half_life)) over views: the order of titles by it is the
-- order by their decayed score at any time, so rows never need rewriting as time
-- passes.
CREATE TABLE trending (
    content_id TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    score_log DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (content_id, region)
);
CREATE INDEX trending_rank ON trending (region, score_log);

-- The recommendation generation readers see; one row.
CREATE TABLE recommend_current (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX recommendations_subject ON recommendations (subject);

-- When a viewer erased history, so that a batch that took its snapshot before
-- drops that viewer's picks before swapping its generation in.
CREATE TABLE history_erasures (
    user_id TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX history_erasures_at ON history_erasures (at);
