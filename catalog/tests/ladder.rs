//! A title with an adaptive ladder, over real HTTP on SQLite and (when configured)
//! PostgreSQL: `/play` adds the HLS and DASH manifest URLs, and the one token of
//! the answer opens every object of the title and nothing of another title.

use crate::common;

use common::{config, right, title, Server, TOKEN_KEY};
use keyframe_catalog::ladder::RenditionRow;
use keyframe_catalog::meta::Asset;
use keyframe_core::token::{verify, TokenKey};
use reqwest::StatusCode;

fn asset(role: &str, key: &str, mime: &str) -> Asset {
    Asset {
        id: keyframe_catalog::meta::new_id(),
        role: role.into(),
        object_key: format!("sha256/{}/{key}", &key[..2]),
        size: 100,
        sha256: key.split('.').next().unwrap_or(key).into(),
        mime: mime.into(),
        ..Asset::default()
    }
}

#[tokio::test]
async fn play_answers_manifest_urls_under_one_token_for_the_whole_title() {
    for tdb in common::databases().await {
        let db = &tdb.db;
        let mut with = title("Laddered", "", &[], vec![right("*")]);
        let ladder = vec![
            asset("rendition", "aa01.mp4", "video/mp4"),
            asset("rendition", "ab02.m4a", "audio/mp4"),
            asset("hls-media", "ac03.m3u8", "application/vnd.apple.mpegurl"),
            asset("hls-media", "ad04.m3u8", "application/vnd.apple.mpegurl"),
            asset("hls", "ae05.m3u8", "application/vnd.apple.mpegurl"),
            asset("dash", "af06.mpd", "application/dash+xml"),
        ];
        let mut ladder = ladder;
        ladder[0].width = Some(1280);
        ladder[0].height = Some(720);
        with.renditions = vec![
            RenditionRow {
                asset_id: ladder[1].id.clone(),
                kind: "audio".into(),
                codecs: "mp4a.40.2".into(),
                bandwidth: 130_000,
                average_bandwidth: 128_000,
                segments: 3,
            },
            RenditionRow {
                asset_id: ladder[0].id.clone(),
                kind: "video".into(),
                codecs: "avc1.64001f".into(),
                bandwidth: 2000,
                average_bandwidth: 1500,
                segments: 3,
            },
        ];
        with.assets.extend(ladder.clone());
        let laddered = db.create_content(&with).await.expect(tdb.name);
        assert_eq!(db.renditions(&laddered.id).await.expect("rows").len(), 2);
        let plain = db
            .create_content(&title("Plain", "", &[], vec![right("*")]))
            .await
            .expect("plain");
        let s = Server::start(db, config()).await;
        let user = s.user("ann").await;

        let (st, v) = s
            .get_in(
                &format!("/api/content/{}/play", laddered.id),
                "eu",
                Some(&user),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let hls = v["hls"].as_str().expect("hls url");
        let dash = v["dash"].as_str().expect("dash url");
        assert!(hls.starts_with("http://eu.edge.test/v1/objects/sha256/ae/ae05.m3u8?__token__="));
        assert!(dash.starts_with("http://eu.edge.test/v1/objects/sha256/af/af06.mpd?__token__="));
        let raw = hls.split_once("__token__=").expect("token").1;
        assert!(v["url"].as_str().expect("url").ends_with(raw), "one token");
        // In a URL the token's `/`s are `%2F` (ffmpeg's DASH demuxer cuts an MPD URL
        // at its last `/`, query included).
        assert!(!raw.contains('/'), "{raw}");
        let token = &raw.replace("%2F", "/");
        let key = TokenKey::from_config(TOKEN_KEY).expect("key");
        for a in laddered.assets.iter().filter(|a| a.role != "poster") {
            verify(&key, token, &format!("/v1/objects/{}", a.object_key), 1)
                .unwrap_or_else(|e| panic!("{}: {e}", a.role));
        }
        for a in &plain.assets {
            assert!(
                verify(&key, token, &format!("/v1/objects/{}", a.object_key), 1).is_err(),
                "another title's {} stays closed",
                a.role
            );
        }

        // The content API lists the ladder: video (with its picture) first.
        let (st, v) = s
            .get(&format!("/api/content/{}", laddered.id), Some(&user))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(
            v["renditions"],
            serde_json::json!([
                {"kind": "video", "width": 1280, "height": 720, "bandwidth": 2000,
                 "average_bandwidth": 1500, "codecs": "avc1.64001f", "segments": 3},
                {"kind": "audio", "width": null, "height": null, "bandwidth": 130_000,
                 "average_bandwidth": 128_000, "codecs": "mp4a.40.2", "segments": 3},
            ]),
            "{v}"
        );
        let (st, v) = s.get(&format!("/api/content/{}", plain.id), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["renditions"], serde_json::json!([]), "{v}");
        // ...and the OpenAPI document describes it.
        let (_, doc) = s.get("/api/openapi.json", None).await;
        let schemas = &doc["components"]["schemas"];
        assert!(
            schemas["ContentDetail"]["properties"]["renditions"].is_object(),
            "{}",
            schemas["ContentDetail"]
        );
        for field in ["kind", "width", "height", "bandwidth", "codecs"] {
            assert!(
                schemas["RenditionView"]["properties"][field].is_object(),
                "{field}: {}",
                schemas["RenditionView"]
            );
        }

        // A title without a ladder: no manifest fields at all.
        let (st, v) = s
            .get_in(
                &format!("/api/content/{}/play", plain.id),
                "eu",
                Some(&user),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(v.get("hls").is_none() && v.get("dash").is_none(), "{v}");

        // The admin upload refuses a malformed ladder before reading the body.
        let (st, v) = s
            .json(
                reqwest::Method::GET,
                "/api/admin/ingest?filename=a.mp4&ladder=720,huge",
                None,
                Some(common::ADMIN),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["code"], "invalid_field");
        s.stop().await;
        tdb.cleanup().await;
    }
}
