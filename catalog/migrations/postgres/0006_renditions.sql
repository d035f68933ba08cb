-- The adaptive-streaming ladder of a title. Every rendition, HLS playlist and DASH
-- MPD is an asset row (roles `rendition`, `hls-media`, `hls`, `dash`), so garbage
-- collection and playback tokens see them like any object; this table adds what a
-- rendition's manifests say about it: RFC 6381 codecs, peak and average bit rates
-- (bits/s, measured from its segments) and its segment count.
CREATE TABLE renditions (
    asset_id TEXT PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    content_id TEXT NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    codecs TEXT NOT NULL,
    bandwidth BIGINT NOT NULL,
    average_bandwidth BIGINT NOT NULL,
    segments BIGINT NOT NULL
);
CREATE INDEX renditions_content ON renditions (content_id);
