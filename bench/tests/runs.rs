//! Short runs of every load model and workload against a test server started
//! on port 0, including one that corrupts a byte and must fail the run.

use crate::common;

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use common::{object, start, Options, TestServer};
use keyframe_bench::{measure, BenchArgs, Outcome, RunReport};
use sha2::{Digest, Sha256};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(line: &str) -> BenchArgs {
    let words = std::iter::once("keyframe-bench").chain(line.split_whitespace());
    Cli::try_parse_from(words).expect("arguments parse").bench
}

async fn single(line: &str) -> RunReport {
    match measure(args(line)).await.expect("run") {
        Outcome::Run(r) => *r,
        Outcome::Compare(_) => panic!("a single run expected"),
    }
}

const LEN: usize = 1 << 20;

/// A server and a verify directory holding the same object as `data.bin`.
async fn setup(options: Options) -> (TestServer, tempfile::TempDir) {
    let data = object(LEN);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("data.bin"), &data).expect("write");
    (start(data, options).await, dir)
}

fn dir(d: &tempfile::TempDir) -> &str {
    d.path().to_str().expect("utf-8 path")
}

fn manifest(path: &Path, data: &[u8]) {
    let sum = hex::encode(Sha256::digest(data));
    std::fs::write(
        path,
        format!(
            "{{\"content_id\":1,\"key\":\"data.bin\",\"size\":{},\"sha256\":\"{sum}\",\"mime\":\"application/octet-stream\",\"path\":\"/v1/objects/data.bin\"}}\n",
            data.len()
        ),
    )
    .expect("write manifest");
}

#[tokio::test]
async fn closed_loop_ranges() {
    let (server, d) = setup(Options::default()).await;
    let r = single(&format!(
        "range --url {} --size 4KiB --aligned --concurrency 4 --warmup 200ms --duration 1s \
         --verify-dir {} --verify-sample 0.1 --threads 1",
        server.url("data.bin"),
        dir(&d)
    ))
    .await;
    let s = &r.summary;
    assert!(s.requests > 100, "{s:?}");
    assert_eq!(s.errors, 0, "{:?}", s.error_kinds);
    assert_eq!(s.bytes, s.requests * 4096);
    assert!(s.verified > 10 && s.verify_failures == 0, "{s:?}");
    assert!(s.latency_ms.p50 > 0.0 && s.latency_ms.p50 <= s.latency_ms.p99);
    assert!(s.latency_ms.p99 <= s.latency_ms.max);
    let per_second: u64 = s.timeline.iter().map(|t| t.requests).sum();
    assert_eq!(per_second, s.requests);
    assert!(s.client_cpu_s > 0.0);
    assert!(keyframe_bench::report::passed(&r, 0.01));
    // The warm-up is not measured: the server saw more than was recorded.
    assert!(server.state.gets.load(std::sync::atomic::Ordering::SeqCst) > s.requests);
}

#[tokio::test]
async fn open_loop_keeps_the_rate() {
    let (server, _d) = setup(Options::default()).await;
    let r = single(&format!(
        "range --url {} --size 64KiB --rate 200 --connections 4 --warmup 0s --duration 1s --threads 1",
        server.url("data.bin")
    ))
    .await;
    let s = &r.summary;
    assert!((180..=220).contains(&s.requests), "{s:?}");
    assert_eq!(s.unsent, 0);
    assert_eq!(s.errors, 0);
    assert!(r.load.contains("open loop"));
}

/// A server that takes 50 ms per response cannot keep 100 requests/s on one
/// connection: latency from the intended send time must show the backlog.
#[tokio::test]
async fn open_loop_does_not_hide_stalls() {
    let (server, _d) = setup(Options {
        delay: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    let r = single(&format!(
        "range --url {} --size 4KiB --rate 100 --connections 1 --warmup 0s --duration 1s \
         --timeout 2s --threads 1",
        server.url("data.bin")
    ))
    .await;
    let s = &r.summary;
    // Closed-loop latency would be ~50 ms; the schedule falls ~0.5 s behind.
    assert!(s.latency_ms.max > 300.0, "{:?}", s.latency_ms);
    assert!(s.latency_ms.p50 > 100.0, "{:?}", s.latency_ms);
}

/// A signed-in endpoint at a fixed rate: `--header` goes with every request (and
/// with the probe that learns the size), and the report has the client's p95.
#[tokio::test]
async fn fixed_rate_with_a_session_header() {
    const SESSION: &str = "Bearer s3cret-token";
    let server = start(
        object(2048),
        Options {
            require_header: Some(("authorization", SESSION)),
            ..Options::default()
        },
    )
    .await;
    let url = server.url("me");
    let line = |extra: &[&str]| {
        let mut words = vec![
            "keyframe-bench",
            "whole",
            "--url",
            &url,
            "--rate",
            "200",
            "--connections",
            "2",
            "--warmup",
            "0s",
            "--duration",
            "1s",
            "--threads",
            "1",
        ];
        words.extend_from_slice(extra);
        Cli::try_parse_from(words).map(|c| c.bench)
    };
    let header = format!("Authorization: {SESSION}");
    let signed_in = line(&["--header", &header, "--header", "X-Trace:  1 "]).expect("parse");
    let r = match measure(signed_in).await.expect("run") {
        Outcome::Run(r) => *r,
        Outcome::Compare(_) => panic!("a single run expected"),
    };
    let s = &r.summary;
    assert!((180..=220).contains(&s.requests), "{s:?}");
    assert_eq!(s.errors, 0, "{:?}", s.error_kinds);
    assert_eq!(s.bytes, s.requests * 2048);
    let l = &s.latency_ms;
    assert!(
        l.p50 > 0.0 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max,
        "{l:?}"
    );
    assert!(r.load.contains("open loop"), "{}", r.load);
    let json = serde_json::to_value(&r).expect("json");
    assert!(json["latency_ms"]["p95"].is_number(), "{json}");
    assert!(keyframe_bench::report::text(&r).contains("p95"));

    // Without the session the endpoint answers 401: the run refuses to start.
    let Err(err) = measure(line(&[]).expect("parse")).await else {
        panic!("a run without the session header must be refused");
    };
    assert!(format!("{err:#}").contains("401"), "{err:#}");
    // A header without a colon is a usage error.
    assert!(line(&["--header", "Authorization"]).is_err());
}

#[tokio::test]
async fn compare_interleaves_two_servers() {
    let (a, _da) = setup(Options::default()).await;
    let (b, _db) = setup(Options {
        delay: Duration::from_millis(2),
        ..Options::default()
    })
    .await;
    let outcome = measure(args(&format!(
        "range --url {} --size 4KiB --concurrency 2 --warmup 0s --duration 300ms \
         --compare {} --rounds 2 --threads 1",
        a.url("data.bin"),
        b.base()
    )))
    .await
    .expect("run");
    assert!(outcome.passed(0.01));
    let Outcome::Compare(c) = outcome else {
        panic!("a comparison expected")
    };
    assert_eq!(c.rounds.len(), 2);
    assert_eq!(c.rounds[0][0].target, a.base());
    assert_eq!(c.rounds[1][1].target, b.base());
    // The slow server is slower, and the ratio says so.
    let ratio = c.ratio_b_over_a["requests_per_s"].expect("ratio");
    assert!(ratio < 0.9, "B/A {ratio}");
    assert!(c.ratio_b_over_a["p50_ms"].expect("ratio") > 1.0);
    let text = outcome_text(Outcome::Compare(c));
    assert!(text.contains("B/A"), "{text}");
}

fn outcome_text(o: Outcome) -> String {
    o.to_text()
}

#[tokio::test]
async fn a_corrupted_byte_fails_the_run() {
    let (server, d) = setup(Options {
        corrupt_nth: Some(10),
        ..Options::default()
    })
    .await;
    let line = format!(
        "range --url {} --size 4KiB --concurrency 2 --warmup 0s --duration 500ms \
         --verify-dir {} --verify-sample 1 --threads 1",
        server.url("data.bin"),
        dir(&d)
    );
    let r = single(&line).await;
    assert_eq!(r.summary.verify_failures, 1, "{:?}", r.summary);
    let first = r.summary.first_verify_failure.as_deref().unwrap_or("");
    assert!(first.contains("differs"), "{first}");
    assert!(!keyframe_bench::report::passed(&r, 1.0));
    // And through `run`, the binary's entry point: not a success.
    let server2_opts = Options {
        corrupt_nth: Some(3),
        ..Options::default()
    };
    let (server2, d2) = setup(server2_opts).await;
    let ok = keyframe_bench::run(args(&format!(
        "range --url {} --size 4KiB --concurrency 1 --warmup 0s --duration 200ms \
         --verify-dir {} --verify-sample 1 --threads 1",
        server2.url("data.bin"),
        dir(&d2)
    )))
    .await
    .expect("run");
    assert!(!ok);
}

#[tokio::test]
async fn whole_objects_are_checked_against_the_manifest() {
    let data = object(LEN);
    let good = start(data.clone(), Options::default()).await;
    let bad = start(
        data.clone(),
        Options {
            corrupt_nth: Some(2),
            ..Options::default()
        },
    )
    .await;
    let d = tempfile::tempdir().expect("tempdir");
    let m = d.path().join("manifest.jsonl");
    manifest(&m, &data);
    let line = |base: String| {
        format!(
            "whole --url {base} --manifest {} --concurrency 1 --warmup 0s --duration 300ms \
             --verify-sample 1 --threads 1",
            m.display()
        )
    };
    let r = single(&line(good.base())).await;
    assert!(
        r.summary.requests > 2 && r.summary.verify_failures == 0,
        "{:?}",
        r.summary
    );
    assert_eq!(r.summary.bytes, r.summary.requests * LEN as u64);
    let r = single(&line(bad.base())).await;
    assert_eq!(r.summary.verify_failures, 1);
    assert!(r
        .summary
        .first_verify_failure
        .as_deref()
        .unwrap_or("")
        .contains("sha256"));
}

#[tokio::test]
async fn cold_and_zipf_keys() {
    let (server, _d) = setup(Options::default()).await;
    let r = single(&format!(
        "cold --url {} --size 4KiB --concurrency 2 --warmup 0s --duration 300ms --threads 1",
        server.url("data.bin")
    ))
    .await;
    let counts = server.query_counts();
    assert!(r.summary.requests > 10);
    assert!(
        counts.len() as u64 >= r.summary.requests,
        "every request a new key"
    );
    assert!(counts.values().all(|&n| n == 1));

    let (server, _d) = setup(Options::default()).await;
    let r = single(&format!(
        "zipf --url {} --objects 8 --exponent 1.2 --size 4KiB --concurrency 2 --warmup 0s \
         --duration 500ms --threads 1",
        server.url("data.bin")
    ))
    .await;
    assert!(r.summary.requests > 200, "{:?}", r.summary);
    let counts = server.query_counts();
    let hits = |i: usize| counts.get(&format!("kf-obj={i}")).copied().unwrap_or(0);
    assert!(counts.len() <= 8);
    assert!(hits(0) > hits(1) && hits(1) > hits(7), "{counts:?}");
}

#[tokio::test]
async fn players_play_without_rebuffering_on_a_fast_server() {
    let (server, d) = setup(Options::default()).await;
    let r = single(&format!(
        "players --url {} --players 3 --bitrate 8Mbps --chunk 64KiB --start-buffer 200ms \
         --buffer 1s --seek-interval 400ms --duration 1500ms --verify-dir {} --verify-sample 0.5 \
         --threads 1",
        server.url("data.bin"),
        dir(&d)
    ))
    .await;
    let p = r.players.as_ref().expect("players report");
    assert_eq!(p.last.players, 3);
    assert_eq!(p.last.started, 3);
    assert_eq!(p.last.rebuffers, 0, "{p:?}");
    assert_eq!(p.last.players_without_rebuffer, 3);
    assert!(p.last.startup_ms_p50 < 200.0, "{p:?}");
    assert!(p.last.seeks > 0, "{p:?}");
    // The buffer caps what a player fetches: 1.5 s of playing plus one buffer
    // fill (1 s of media) at the start and after each seek.
    let fills = 1.0 + p.last.seeks as f64 / 3.0;
    let cap = 8e6 * (1.5 + fills) / 1.5;
    assert!(p.last.achieved_bitrate_bps > 8e6 * 0.8, "{p:?}");
    assert!(p.last.achieved_bitrate_bps < cap * 1.1, "cap {cap}: {p:?}");
    assert_eq!(r.summary.verify_failures, 0);
    assert!(r.summary.verified > 0);
}

#[tokio::test]
async fn players_rebuffer_on_a_slow_server_and_the_ramp_stops() {
    // 64 KiB at 8 Mbps is 66 ms of media; the server takes 150 ms per chunk.
    let (server, _d) = setup(Options {
        delay: Duration::from_millis(150),
        ..Options::default()
    })
    .await;
    let r = single(&format!(
        "players --url {} --players 8 --ramp --bitrate 8Mbps --chunk 64KiB --start-buffer 100ms \
         --buffer 1s --seek-interval 0s --duration 1s --threads 1",
        server.url("data.bin")
    ))
    .await;
    let p = r.players.as_ref().expect("players report");
    assert_eq!(p.steps.len(), 1, "the first step already rebuffers: {p:?}");
    assert!(p.last.rebuffers > 0);
    assert!(p.last.rebuffer_ratio > 0.2, "{p:?}");
    assert_eq!(p.max_players_without_rebuffer, 0);

    let (fast, _d) = setup(Options::default()).await;
    let r = single(&format!(
        "players --url {} --players 4 --ramp --bitrate 2Mbps --chunk 64KiB --start-buffer 300ms \
         --buffer 1s --seek-interval 0s --duration 600ms --threads 1",
        fast.url("data.bin")
    ))
    .await;
    let p = r.players.as_ref().expect("players report");
    let counts: Vec<usize> = p.steps.iter().map(|s| s.players).collect();
    assert_eq!(counts, vec![1, 2, 4]);
    assert_eq!(p.max_players_without_rebuffer, 4);
}
