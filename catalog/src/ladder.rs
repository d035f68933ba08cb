//! A title's adaptive-streaming ladder in the database: the `renditions` rows
//! written in the ingest's one transaction (`meta::Db::create_content`) and read
//! back for the API. The objects themselves are asset rows like any other.

use sqlx::Row;

use crate::db::{map_err, Db, DbError};

/// What the manifests say about one rendition (its asset row holds the rest).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RenditionRow {
    /// The rendition's asset (role `rendition`).
    pub asset_id: String,
    /// `video` or `audio`.
    pub kind: String,
    /// RFC 6381 codecs: `avc1.64001f`, `mp4a.40.2`.
    pub codecs: String,
    /// Peak segment bit rate, bits/s.
    pub bandwidth: i64,
    /// Average bit rate, bits/s.
    pub average_bandwidth: i64,
    pub segments: i64,
}

/// Inserts a title's rendition rows inside its creating transaction.
pub(crate) async fn insert(
    tx: &mut sqlx::AnyConnection,
    content_id: &str,
    rows: &[RenditionRow],
) -> Result<(), sqlx::Error> {
    for r in rows {
        sqlx::query(
            "INSERT INTO renditions (asset_id, content_id, kind, codecs, bandwidth, \
             average_bandwidth, segments) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.asset_id)
        .bind(content_id)
        .bind(&r.kind)
        .bind(&r.codecs)
        .bind(r.bandwidth)
        .bind(r.average_bandwidth)
        .bind(r.segments)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

impl Db {
    /// A title's renditions, highest bit rate first.
    pub async fn renditions(&self, content_id: &str) -> Result<Vec<RenditionRow>, DbError> {
        sqlx::query(
            "SELECT asset_id, kind, codecs, bandwidth, average_bandwidth, segments \
             FROM renditions WHERE content_id = $1 ORDER BY kind DESC, bandwidth DESC",
        )
        .bind(content_id)
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(RenditionRow {
                asset_id: r.try_get("asset_id")?,
                kind: r.try_get("kind")?,
                codecs: r.try_get("codecs")?,
                bandwidth: r.try_get("bandwidth")?,
                average_bandwidth: r.try_get("average_bandwidth")?,
                segments: r.try_get("segments")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(map_err)
    }
}

/// One rendition of a title's ladder as the content API lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RenditionView {
    /// `video` or `audio`.
    pub kind: String,
    /// Picture width in pixels (video only).
    pub width: Option<i64>,
    /// Picture height in pixels (video only).
    pub height: Option<i64>,
    /// Peak segment bit rate, bits/s (HLS `BANDWIDTH`, DASH `@bandwidth`).
    pub bandwidth: i64,
    /// Average bit rate, bits/s (HLS `AVERAGE-BANDWIDTH`).
    pub average_bandwidth: i64,
    /// RFC 6381 codecs: `avc1.64001f`, `mp4a.40.2`.
    pub codecs: String,
    /// Media segments (fragments) in the rendition.
    pub segments: i64,
}

/// The default ladder, by the short side of the picture (720 = 1280x720 or
/// 720x1280).
pub const DEFAULT_RUNGS: [u32; 5] = [1080, 720, 480, 360, 240];

/// Parses a ladder: short sides in pixels (`1080,720,480`, 16–4320, any order, a
/// trailing `p` allowed), largest first; `none` is no ladder (an empty list).
pub fn parse_rungs(s: &str) -> Result<Vec<u32>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut rungs = Vec::new();
    for part in s.split(',') {
        let part = part.trim().trim_end_matches('p');
        let h: u32 = part.parse().map_err(|_| {
            format!("'{part}' is not a rung height (expected e.g. 1080,720,480 or none)")
        })?;
        if !(16..=4320).contains(&h) {
            return Err(format!("rung {h} is outside 16–4320 pixels"));
        }
        rungs.push(h & !1);
    }
    rungs.sort_unstable_by(|a, b| b.cmp(a));
    rungs.dedup();
    Ok(rungs)
}

/// The asset roles of a ladder's objects.
pub const LADDER_ROLES: [&str; 4] = ["rendition", "hls-media", "hls", "dash"];
