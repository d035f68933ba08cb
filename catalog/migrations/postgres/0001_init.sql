-- Keyframe's first schema (PostgreSQL). Times are Unix milliseconds; ids are text.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    date_of_birth TEXT,
    display_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE content (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX content_created ON content (created_at);

CREATE TABLE content_categories (
    content_id TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    PRIMARY KEY (content_id, category)
);
CREATE INDEX content_categories_category ON content_categories (category);

CREATE TABLE assets (
    id TEXT PRIMARY KEY,
    content_id TEXT REFERENCES content (id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    object_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    mime TEXT NOT NULL,
    width BIGINT,
    height BIGINT,
    duration_ms BIGINT,
    bitrate BIGINT,
    container TEXT,
    video_codec TEXT,
    audio_codec TEXT,
    faststart BIGINT,
    inline_thumbnail TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX assets_content ON assets (content_id);
CREATE INDEX assets_user ON assets (user_id);
CREATE INDEX assets_object_key ON assets (object_key);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE rights (
    content_id TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    region TEXT NOT NULL,
    available_from BIGINT,
    available_until BIGINT,
    PRIMARY KEY (content_id, region)
);
CREATE INDEX rights_region ON rights (region);

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
    PRIMARY KEY (user_id, session_id, seq)
);
CREATE INDEX watch_events_at ON watch_events (at);

CREATE TABLE recommendations (
    generation BIGINT NOT NULL,
    subject TEXT NOT NULL,
    rank BIGINT NOT NULL,
    content_id TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    reason TEXT,
    PRIMARY KEY (generation, subject, rank)
);
