//! The ingest pipeline end to end, on every store of `keyframe_origin::testing`
//! and every database of `keyframe_catalog::testing`.

use crate::common;

use std::time::Duration;

use common::*;
use futures::stream;
use image::ImageFormat;
use keyframe_catalog::meta::Right;
use keyframe_ingest::objects::content_key;
use keyframe_ingest::{gc, ingest, ingest_avatar, IngestError, IngestOptions, Source, Tools};

fn opts() -> IngestOptions {
    IngestOptions::default()
}

fn no_tools() -> IngestOptions {
    IngestOptions {
        tools: Tools::none(),
        ..IngestOptions::default()
    }
}

#[tokio::test]
async fn content_lands_whole_on_every_store_and_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let blob = file(dir.path(), "blob.dat", &data);
    let png = encoded(800, 600, ImageFormat::Png);
    let png_file = file(dir.path(), "picture.jpg", &png);
    for ts in keyframe_origin::testing::all() {
        for tdb in keyframe_catalog::testing::all().await {
            let at = format!("{} × {}", ts.name, tdb.name);
            let (store, db) = (&ts.store, &tdb.db);
            let o = IngestOptions {
                title: Some("A title".into()),
                description: "words".into(),
                categories: vec!["b".into(), "a".into()],
                rights: vec![Right {
                    region: "eu".into(),
                    available_from: Some(1000),
                    available_until: None,
                }],
                ..no_tools()
            };
            // Bytes with no recognisable type, whatever the file is called.
            let r = ingest(store, db, blob.as_path(), &o).await.expect(&at);
            let sha = sha256(&data);
            assert_eq!(r.asset.sha256, sha, "{at}");
            assert_eq!(r.asset.mime, "application/octet-stream", "{at}");
            assert_eq!(
                r.asset.object_key,
                content_key(&sha, "application/octet-stream")
            );
            assert_eq!(
                r.asset.object_key,
                format!("sha256/{}/{sha}.bin", &sha[..2])
            );
            assert_eq!(r.asset.size, data.len() as i64);
            assert!(!r.already_stored);
            assert_eq!(read(store, &r.asset.object_key).await, data, "{at}");
            let c = db
                .content(r.content_id.as_deref().expect("content id"))
                .await
                .expect(&at);
            assert_eq!(c.title, "A title");
            assert_eq!(c.description, "words");
            assert_eq!(c.kind, "other");
            assert_eq!(c.categories, vec!["a", "b"]);
            assert_eq!(c.rights, o.rights);
            assert_eq!(c.assets, vec![r.asset.clone()], "{at}");

            // An image: variants and an inline thumbnail, committed together.
            let r = ingest(store, db, png_file.as_path(), &no_tools())
                .await
                .expect(&at);
            assert_eq!(r.asset.mime, "image/png", "{at}: named .jpg, is a PNG");
            assert!(r.asset.object_key.ends_with(".png"));
            assert_eq!((r.asset.width, r.asset.height), (Some(800), Some(600)));
            let thumb = r.asset.inline_thumbnail.clone().expect("inline thumbnail");
            assert!(thumb.starts_with("data:image/jpeg;base64,") && thumb.len() <= 2048);
            let roles: Vec<_> = r.derived.iter().map(|a| a.role.as_str()).collect();
            assert_eq!(roles, vec!["variant-48", "variant-120", "variant-600"]);
            for v in &r.derived {
                let bytes = read(store, &v.object_key).await;
                assert_eq!(sha256(&bytes), v.sha256);
                let img = image::load_from_memory(&bytes).expect("variant decodes");
                assert_eq!(Some(i64::from(img.width())), v.width);
                assert_eq!(v.width.map(|w| w * 3 / 4), v.height);
            }
            let c = db
                .content(r.content_id.as_deref().expect("id"))
                .await
                .expect(&at);
            assert_eq!(c.title, "picture");
            assert_eq!(c.kind, "image");
            assert_eq!(c.assets.len(), 4);
            assert_eq!(c.rights.len(), 1);
            assert_eq!(c.rights[0].region, "*", "everywhere by default");
            assert_eq!(c.rights[0].available_from, None);

            // Nothing is left at temporary keys.
            assert!(keys(store, "tmp").await.is_empty(), "{at}");
            assert_eq!(keys(store, "sha256").await.len(), 5, "{at}");
            tdb.cleanup().await;
        }
    }
}

#[tokio::test]
async fn the_same_bytes_are_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = vec![7u8; 3 << 20];
    let a = file(dir.path(), "a.bin", &data);
    let b = file(dir.path(), "b.bin", &data);
    for ts in keyframe_origin::testing::all() {
        for tdb in keyframe_catalog::testing::all().await {
            let (store, db) = (&ts.store, &tdb.db);
            let first = ingest(store, db, a.as_path(), &no_tools())
                .await
                .expect("first");
            let second = ingest(store, db, b.as_path(), &no_tools())
                .await
                .expect("second");
            assert_ne!(first.content_id, second.content_id);
            assert_eq!(first.asset.object_key, second.asset.object_key);
            assert!(!first.already_stored);
            assert!(second.already_stored, "{} × {}", ts.name, tdb.name);
            // Streams dedupe as well.
            let third = ingest(
                store,
                db,
                Source::stream(stream::iter(
                    data.chunks(100_000)
                        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                        .collect::<Vec<_>>(),
                )),
                &no_tools(),
            )
            .await
            .expect("third");
            assert!(third.already_stored);
            assert_eq!(third.title.as_deref(), Some("untitled"));
            assert_eq!(keys(store, "").await, vec![first.asset.object_key.clone()]);
            assert_eq!(count(db, "content").await, 3);
            assert_eq!(count(db, "assets").await, 3);
            assert!(db
                .object_referenced(&first.asset.object_key)
                .await
                .expect("ref"));
            tdb.cleanup().await;
        }
    }
}

#[tokio::test]
async fn video_is_probed_and_gets_a_poster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(slow) = video(dir.path(), false) else {
        return;
    };
    let fast = video(dir.path(), true).expect("video");
    let ts = keyframe_origin::testing::local();
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let (store, db) = (&ts.store, &tdb.db);

    let r = ingest(store, db, slow.as_path(), &opts())
        .await
        .expect("ingest");
    let a = &r.asset;
    assert_eq!(a.mime, "video/mp4");
    assert!(a.object_key.ends_with(".mp4"));
    assert_eq!(
        a.faststart,
        Some(false),
        "ffmpeg writes moov last by default"
    );
    assert_eq!((a.width, a.height), (Some(320), Some(240)));
    assert!(
        matches!(a.duration_ms, Some(d) if (1900..=2200).contains(&d)),
        "{a:?}"
    );
    assert_eq!(a.container.as_deref(), Some("mp4"));
    assert!(
        matches!(a.video_codec.as_deref(), Some("h264" | "mpeg4")),
        "{a:?}"
    );
    assert_eq!(a.audio_codec.as_deref(), Some("aac"));
    assert!(a.bitrate.is_some_and(|b| b > 0));
    // "moov at the end" is a warning like any other (it reaches `--json` too).
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].starts_with("moov at the end"),
        "{:?}",
        r.warnings
    );
    let poster = r
        .derived
        .iter()
        .find(|d| d.role == "poster")
        .expect("poster");
    assert_eq!(poster.mime, "image/jpeg");
    assert_eq!((poster.width, poster.height), (Some(320), Some(240)));
    let img = image::load_from_memory(&read(store, &poster.object_key).await).expect("jpeg");
    assert_eq!(img.width(), 320);
    assert!(a
        .inline_thumbnail
        .as_deref()
        .is_some_and(|t| t.len() <= 2048));
    let c = db
        .content(r.content_id.as_deref().expect("id"))
        .await
        .expect("content");
    assert_eq!(c.kind, "video");
    assert_eq!(c.assets.len(), 2);

    let r = ingest(store, db, fast.as_path(), &opts())
        .await
        .expect("ingest");
    assert_eq!(r.asset.faststart, Some(true));

    // --faststart rewrites before upload: other bytes, same media.
    let o = IngestOptions {
        faststart: true,
        ..opts()
    };
    let r = ingest(store, db, slow.as_path(), &o)
        .await
        .expect("faststart");
    assert_eq!(r.asset.faststart, Some(true));
    assert_ne!(r.asset.sha256, sha256(&std::fs::read(&slow).expect("read")));
    assert_eq!(
        sha256(&read(store, &r.asset.object_key).await),
        r.asset.sha256
    );
    assert!(matches!(r.asset.duration_ms, Some(d) if (1900..=2200).contains(&d)));

    // Without the tools: stored all the same, with warnings and no poster.
    let r = ingest(store, db, slow.as_path(), &no_tools())
        .await
        .expect("no tools");
    assert_eq!(
        r.asset.faststart,
        Some(false),
        "the moov walk needs no tool"
    );
    assert_eq!(r.asset.duration_ms, None);
    assert!(r.derived.is_empty());
    assert!(
        r.warnings.iter().any(|w| w.contains("ffprobe")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("ffmpeg")),
        "{:?}",
        r.warnings
    );
    let err = ingest(
        store,
        db,
        slow.as_path(),
        &IngestOptions {
            faststart: true,
            ..no_tools()
        },
    )
    .await
    .expect_err("faststart without ffmpeg");
    assert!(err.to_string().contains("ffmpeg"), "{err}");
    assert!(keys(store, "tmp").await.is_empty());
    tdb.cleanup().await;
}

#[tokio::test]
async fn streams_are_sniffed_and_media_streams_are_probed() {
    let png = encoded(300, 200, ImageFormat::Png);
    let ts = keyframe_origin::testing::local();
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let r = ingest(
        &ts.store,
        &tdb.db,
        Source::reader(std::io::Cursor::new(png.clone())).with_name("upload.png"),
        &no_tools(),
    )
    .await
    .expect("stream");
    assert_eq!(r.asset.mime, "image/png");
    assert_eq!(r.title.as_deref(), Some("upload"));
    assert_eq!(r.derived.len(), 3);
    assert_eq!(read(&ts.store, &r.asset.object_key).await, png);
    let empty = ingest(
        &ts.store,
        &tdb.db,
        Source::stream(stream::empty()),
        &no_tools(),
    )
    .await;
    assert!(matches!(empty, Err(IngestError::Empty)));
    let broken = Source::stream(stream::iter(vec![
        Ok(bytes::Bytes::from_static(b"some bytes")),
        Err(std::io::Error::other("connection reset")),
    ]));
    let err = ingest(&ts.store, &tdb.db, broken, &no_tools())
        .await
        .expect_err("broken");
    assert!(err.to_string().contains("connection reset"), "{err}");
    assert!(
        keys(&ts.store, "").await.len() == 4,
        "only the PNG and its variants"
    );
    assert_eq!(count(&tdb.db, "content").await, 1);
    tdb.cleanup().await;
}

#[tokio::test]
async fn bad_inputs_are_clear_errors_and_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut png = encoded(200, 200, ImageFormat::Png);
    png.truncate(png.len() / 2);
    let corrupt = file(dir.path(), "corrupt.png", &png);
    let empty = file(dir.path(), "empty.bin", b"");
    let ts = keyframe_origin::testing::local();
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let (store, db) = (&ts.store, &tdb.db);
    let e = ingest(store, db, corrupt.as_path(), &no_tools())
        .await
        .expect_err("corrupt");
    assert!(matches!(e, IngestError::CorruptImage(_)), "{e}");
    let e = ingest(store, db, empty.as_path(), &no_tools())
        .await
        .expect_err("empty");
    assert!(matches!(e, IngestError::Empty), "{e}");
    let e = ingest(store, db, dir.path(), &no_tools())
        .await
        .expect_err("dir");
    assert!(matches!(e, IngestError::Directory(_)), "{e}");
    assert!(e.to_string().contains("is a directory"));
    let e = ingest(store, db, dir.path().join("nope").as_path(), &no_tools())
        .await
        .expect_err("missing");
    assert!(e.to_string().starts_with("cannot read"), "{e}");
    assert!(keys(store, "").await.is_empty());
    assert_eq!(count(db, "content").await, 0);
    tdb.cleanup().await;
}

#[tokio::test]
async fn storage_or_database_down_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = file(dir.path(), "x.bin", &[1u8; 1000]);
    // A store whose directory is replaced by a plain file.
    let ts = keyframe_origin::testing::local();
    let root = ts
        .url
        .strip_prefix("file://")
        .expect("local url")
        .to_string();
    std::fs::remove_dir_all(&root).expect("rm");
    std::fs::write(&root, b"not a directory").expect("write");
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let e = ingest(&ts.store, &tdb.db, f.as_path(), &no_tools())
        .await
        .expect_err("store");
    assert!(matches!(e, IngestError::Store(_)), "{e}");
    assert!(e.to_string().starts_with("object storage failed"), "{e}");
    assert_eq!(count(&tdb.db, "content").await, 0);

    let good = keyframe_origin::testing::local();
    tdb.db.close().await;
    let e = ingest(&good.store, &tdb.db, f.as_path(), &no_tools())
        .await
        .expect_err("db");
    assert!(matches!(e, IngestError::Db(_)), "{e}");
    assert!(
        keys(&good.store, "tmp").await.is_empty(),
        "the temporary object is gone"
    );
    tdb.cleanup().await;
}

#[tokio::test]
async fn a_failed_commit_leaves_no_metadata_and_gc_finds_the_orphan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let png = file(dir.path(), "p.png", &encoded(300, 300, ImageFormat::Png));
    for ts in keyframe_origin::testing::all() {
        for tdb in keyframe_catalog::testing::all().await {
            let at = format!("{} × {}", ts.name, tdb.name);
            let (store, db) = (&ts.store, &tdb.db);
            break_asset_inserts(db).await;
            let e = ingest(store, db, png.as_path(), &no_tools())
                .await
                .expect_err(&at);
            assert!(matches!(e, IngestError::Db(_)), "{at}: {e}");
            assert_eq!(count(db, "content").await, 0, "{at}: the title rolled back");
            assert_eq!(count(db, "assets").await, 0, "{at}");
            let stored = keys(store, "").await;
            assert_eq!(
                stored.len(),
                4,
                "{at}: the source and 3 variants, unreferenced"
            );
            assert!(stored.iter().all(|k| k.starts_with("sha256/")));

            let young = gc(store, db, Duration::from_secs(3600), true)
                .await
                .expect("gc");
            assert!(young.orphans.is_empty(), "{at}: within the grace period");
            assert_eq!(young.scanned, 4);
            let report = gc(store, db, Duration::ZERO, false).await.expect("gc");
            let mut found: Vec<_> = report.orphans.iter().map(|o| o.key.clone()).collect();
            found.sort();
            assert_eq!(found, stored, "{at}");
            assert_eq!(report.deleted, 0);
            assert_eq!(
                keys(store, "").await.len(),
                4,
                "{at}: listing deletes nothing"
            );
            let report = gc(store, db, Duration::ZERO, true).await.expect("gc");
            assert_eq!(report.deleted, 4);
            assert!(keys(store, "").await.is_empty(), "{at}");
            tdb.cleanup().await;
        }
    }
}

#[tokio::test]
async fn gc_keeps_referenced_and_young_objects() {
    use object_store::{path::Path, ObjectStoreExt, PutPayload};
    let dir = tempfile::tempdir().expect("tempdir");
    let f = file(dir.path(), "keep.bin", b"keep me");
    for ts in keyframe_origin::testing::all() {
        for tdb in keyframe_catalog::testing::all().await {
            let (store, db) = (&ts.store, &tdb.db);
            let kept = ingest(store, db, f.as_path(), &no_tools())
                .await
                .expect("ingest");
            let orphan = content_key(&sha256(b"lost"), "video/mp4");
            store
                .put(
                    &Path::from(orphan.as_str()),
                    PutPayload::from_static(b"lost"),
                )
                .await
                .expect("put");
            store
                .put(
                    &Path::from("tmp/deadbeef"),
                    PutPayload::from_static(b"marker"),
                )
                .await
                .expect("put");
            store
                .put(
                    &Path::from("elsewhere/file"),
                    PutPayload::from_static(b"not ours"),
                )
                .await
                .expect("put");
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let report = gc(store, db, Duration::from_millis(500), true)
                .await
                .expect("gc");
            let mut found: Vec<_> = report.orphans.iter().map(|o| o.key.as_str()).collect();
            found.sort();
            assert_eq!(found, vec![orphan.as_str(), "tmp/deadbeef"], "{}", ts.name);
            assert_eq!(report.orphan_bytes, 4 + 6);
            assert_eq!(report.deleted, 2);
            assert_eq!(
                keys(store, "").await,
                vec!["elsewhere/file".to_string(), kept.asset.object_key.clone()]
            );
            tdb.cleanup().await;
        }
    }
}

#[tokio::test]
async fn avatars_replace_the_previous_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = file(
        dir.path(),
        "me.jpg",
        &encoded(1000, 1000, ImageFormat::Jpeg),
    );
    let second = file(dir.path(), "me2.png", &encoded(64, 32, ImageFormat::Png));
    let text = file(dir.path(), "me.txt", b"hello, I am not a picture");
    let mut bad = encoded(100, 100, ImageFormat::Jpeg);
    bad.truncate(200);
    let corrupt = file(dir.path(), "bad.jpg", &bad);
    for ts in keyframe_origin::testing::all() {
        for tdb in keyframe_catalog::testing::all().await {
            let (store, db) = (&ts.store, &tdb.db);
            let user = db
                .create_user("ada", "ada@example.com", "x", None)
                .await
                .expect("user");
            let r = ingest_avatar(store, db, "ada", first.as_path(), &no_tools())
                .await
                .expect("avatar");
            assert_eq!(r.user_id.as_deref(), Some(user.id.as_str()));
            assert_eq!(r.content_id, None);
            assert_eq!(r.asset.role, "avatar");
            assert_eq!(r.asset.mime, "image/jpeg");
            assert!(r.asset.inline_thumbnail.is_some());
            let assets = db.user_assets(&user.id).await.expect("assets");
            let mut roles: Vec<_> = assets.iter().map(|a| a.role.clone()).collect();
            roles.sort();
            assert_eq!(
                roles,
                vec!["avatar", "variant-120", "variant-48", "variant-600"]
            );
            assert_eq!(count(db, "content").await, 0);

            let r2 = ingest_avatar(store, db, "ada", second.as_path(), &no_tools())
                .await
                .expect("again");
            let assets = db.user_assets(&user.id).await.expect("assets");
            assert_eq!(assets.len(), 4);
            assert!(assets.iter().all(|a| a.object_key != r.asset.object_key));
            let big = assets
                .iter()
                .find(|a| a.role == "variant-600")
                .expect("600");
            assert_eq!(
                (big.width, big.height),
                (Some(64), Some(32)),
                "never upscaled"
            );
            assert_eq!(r2.asset.mime, "image/png");

            let e = ingest_avatar(store, db, "ada", text.as_path(), &no_tools()).await;
            assert!(matches!(e, Err(IngestError::UnsupportedAvatar(_))), "{e:?}");
            let e = ingest_avatar(store, db, "ada", corrupt.as_path(), &no_tools()).await;
            assert!(matches!(e, Err(IngestError::CorruptImage(_))), "{e:?}");
            let e = ingest_avatar(store, db, "nobody", first.as_path(), &no_tools()).await;
            assert!(matches!(e, Err(IngestError::UnknownUser(_))), "{e:?}");
            assert_eq!(db.user_assets(&user.id).await.expect("assets"), assets);
            tdb.cleanup().await;
        }
    }
}

/// A file that claims to be media, by its name or its first bytes, but does not
/// decode is refused before anything is stored; with `allow_broken` it is stored
/// as kind `other` with a warning and no made-up facts (the 100 bytes of a cut
/// MP4 once became a 60 s video with `faststart: true`).
#[tokio::test]
async fn broken_media_is_refused_or_stored_as_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ts = keyframe_origin::testing::local();
    let tdb = keyframe_catalog::testing::sqlite().await.expect("db");
    let (store, db) = (&ts.store, &tdb.db);
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let named_video = file(dir.path(), "noise.mp4", &noise);
    for o in [opts(), no_tools()] {
        let e = ingest(store, db, named_video.as_path(), &o)
            .await
            .expect_err("random bytes named .mp4");
        assert!(matches!(e, IngestError::Broken(_)), "{e}");
        assert!(e.to_string().contains(".mp4"), "{e}");
    }
    let Some(good) = video(dir.path(), true) else {
        return;
    };
    let bytes = std::fs::read(&good).expect("read");
    let cut = file(dir.path(), "cut.mp4", &bytes[..100]);
    let cut_media = file(dir.path(), "cut-media.mp4", &bytes[..bytes.len() / 2]);
    // With ffprobe, and without it (the MP4's boxes tell): refused.
    for o in [opts(), no_tools()] {
        for f in [&cut, &cut_media] {
            let e = ingest(store, db, f.as_path(), &o)
                .await
                .expect_err("a cut MP4");
            assert!(matches!(e, IngestError::Broken(_)), "{f:?}: {e}");
        }
    }
    assert_eq!(count(db, "content").await, 0);
    assert!(keys(store, "").await.is_empty(), "nothing stored");

    let o = IngestOptions {
        allow_broken: true,
        ..opts()
    };
    let r = ingest(store, db, cut.as_path(), &o).await.expect("allowed");
    assert_eq!(r.kind, "other");
    assert_eq!(r.asset.duration_ms, None);
    assert_eq!(r.asset.faststart, None);
    assert_eq!(r.asset.video_codec, None);
    assert!(r.derived.is_empty());
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("stored as kind other"),
        "{:?}",
        r.warnings
    );
    let c = db
        .content(r.content_id.as_deref().expect("id"))
        .await
        .expect("content");
    assert_eq!(c.kind, "other");
    tdb.cleanup().await;
}
