//! The edge's memory bound, measured on the real process: streaming 6× more
//! distinct bytes than `--cache-memory` through an edge (whole objects, random
//! ranges, and cold ranges under 400 distinct keys, several clients at once)
//! keeps its peak RSS within what it held at start + the bound + 15% + 40 MiB
//! (counting the sealed memfds that hold cached chunks), and the memory tier's own
//! gauge within the bound. The start figure is mostly the binary's mapped code, which
//! grew with DataFusion and Ballista in the same binary (a debug build's is ~60 MiB)
//! and has nothing to do with the cache.

use crate::common;

use std::io::Write;

use common::{keyframe, metric_sum, metrics_text, Running};
use futures::StreamExt;

const BOUND_MIB: u64 = 64;
const OBJECTS: usize = 6;
const OBJECT_MIB: usize = 64;

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// What the process holds in memory now, in KiB: its private and file-backed
/// resident pages plus its sealed chunk memfds, whole. Chunk bytes live in memfds
/// that are mostly sent with `sendfile` and never touched through the mapping, so
/// RSS alone (which counts shared memory only where it is mapped and faulted in)
/// would not see them.
fn held_kib(pid: u32) -> u64 {
    let mut memfd = 0u64;
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            let is_chunk = std::fs::read_link(fd.path())
                .map(|t| t.to_string_lossy().starts_with("/memfd:keyframe-chunk"))
                .unwrap_or(false);
            if is_chunk {
                memfd += std::fs::metadata(fd.path()).map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    status_kib(pid, "RssAnon:") + status_kib(pid, "RssFile:") + memfd / 1024
}

async fn drain(client: &reqwest::Client, url: &str, range: Option<String>) -> u64 {
    let mut rb = client.get(url);
    if let Some(r) = range {
        rb = rb.header("range", r);
    }
    let resp = rb.send().await.expect("request");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let mut body = resp.bytes_stream();
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        n += chunk.expect("body").len() as u64;
    }
    n
}

/// GETs each `(url, start, len)` range, eight at a time; the bytes drained in all.
async fn drain_ranges(
    client: &reqwest::Client,
    ranges: impl Iterator<Item = (String, u64, u64)>,
) -> u64 {
    let gets = ranges.map(|(url, start, len)| {
        let client = client.clone();
        async move {
            let range = format!("bytes={start}-{}", start + len - 1);
            drain(&client, &url, Some(range)).await
        }
    });
    futures::stream::iter(gets)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .sum()
}

/// Chunks live in buffers mapped per chunk (an evicted one goes back to the OS at
/// once) and the tiers apply moka's pending writes every 1/32 of their capacity,
/// so what stays resident is the tier, the chunks in flight and the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_rss_stays_within_the_cache_memory_bound() {
    peak_memory_stays_within_the_bound(false).await;
}

/// The same with `sendfile` on: chunks live in sealed memfds, counted whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_with_sendfile_stays_within_the_cache_memory_bound() {
    peak_memory_stays_within_the_bound(true).await;
}

async fn peak_memory_stays_within_the_bound(sendfile: bool) {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipping: no /proc");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let media = tmp.path().join("data/objects/media");
    std::fs::create_dir_all(&media).expect("mkdir");
    let mut block = vec![0u8; 1 << 20];
    for o in 0..OBJECTS {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(media.join(format!("o{o}.mp4"))).expect("create"),
        );
        for i in 0..OBJECT_MIB {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (j as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add((o * 977 + i) as u32) as u8;
            }
            f.write_all(&block).expect("write");
        }
        f.flush().expect("flush");
    }

    let mut cmd = keyframe();
    cmd.arg("--data-dir")
        .arg(tmp.path().join("data"))
        .args(["origin", "--listen", "127.0.0.1:0"]);
    let origin = Running::start(cmd, 1);
    let mut cmd = keyframe();
    cmd.args([
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        origin.url("origin"),
        "--cache-memory",
        &format!("{BOUND_MIB}MiB"),
        "--chunk-size",
        "1MiB",
    ]);
    cmd.env("KEYFRAME_SENDFILE", sendfile.to_string());
    let edge = Running::start(cmd, 1);
    let pid = edge.child.id();
    let base = edge.url("edge").to_string();
    let client = reqwest::Client::new();
    let start_mib = status_kib(pid, "VmRSS:") / 1024;
    eprintln!("edge RSS at start {start_mib} MiB");
    let peak_held = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak_held, done) = (peak_held.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak_held.fetch_max(held_kib(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };

    // Every object whole, two clients per object at once, then random 1 MiB and
    // 3 MiB ranges across all of them: 6 × 64 MiB of distinct chunks pass through
    // a 64 MiB tier several times.
    let mut total = 0u64;
    let whole = (0..OBJECTS * 2).map(|i| {
        let url = format!("{base}/v1/objects/media/o{}.mp4", i % OBJECTS);
        let client = client.clone();
        async move { drain(&client, &url, None).await }
    });
    let results = futures::stream::iter(whole)
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    for n in results {
        assert_eq!(n, (OBJECT_MIB << 20) as u64);
        total += n;
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let ranges = (0..240).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let o = (x % OBJECTS as u64) as usize;
        let len = if x % 3 == 0 { 3 << 20 } else { 1 << 20 };
        let start = (x >> 8) % ((OBJECT_MIB << 20) as u64 - len);
        (format!("{base}/v1/objects/media/o{o}.mp4"), start, len)
    });
    total += drain_ranges(&client, ranges).await;
    // Cold: every request a new cache key (a unique query), so entries pile up;
    // an entry must not pin the upstream connection's read buffer.
    let cold = (0..400).map(|i| {
        let start = (i as u64 * 7_919_993) % ((OBJECT_MIB as u64 - 2) << 20);
        let url = format!("{base}/v1/objects/media/o{}.mp4?u={i}", i % OBJECTS);
        (url, start, 1 << 20)
    });
    total += drain_ranges(&client, cold).await;
    assert!(
        total > (BOUND_MIB << 20) * 6,
        "only {total} bytes went through"
    );

    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak_mib = status_kib(pid, "VmHWM:") / 1024;
    let held_mib = peak_held.load(std::sync::atomic::Ordering::Relaxed) / 1024;
    eprintln!("edge RSS now {} MiB", status_kib(pid, "VmRSS:") / 1024);
    let m = metrics_text(&client, &base).await;
    if sendfile {
        let sent = metric_sum(&m, "keyframe_edge_sendfile_bytes_total ")
            .expect("keyframe_edge_sendfile_bytes_total");
        assert!(sent > 0.0, "no byte went out with sendfile");
    }
    for l in m.lines().filter(|l| {
        l.starts_with("keyframe_edge_memory")
            || l.starts_with("keyframe_edge_entries")
            || l.starts_with("keyframe_edge_evictions")
    }) {
        eprintln!("{l}");
    }
    let limit = start_mib + BOUND_MIB + BOUND_MIB * 15 / 100 + 40;
    eprintln!(
        "edge peak RSS {peak_mib} MiB after {} MiB served, bound {BOUND_MIB} MiB (limit {limit} MiB)",
        total >> 20
    );
    eprintln!("edge peak of RSS (private + file) + chunk memfds, sampled: {held_mib} MiB");
    assert!(
        peak_mib <= limit,
        "edge peak RSS {peak_mib} MiB exceeds {limit} MiB for --cache-memory {BOUND_MIB}MiB"
    );
    assert!(
        held_mib <= limit,
        "edge peak memory with its chunk memfds, {held_mib} MiB, exceeds {limit} MiB for --cache-memory {BOUND_MIB}MiB"
    );
    let held = metric_sum(&m, "keyframe_edge_memory_bytes ").expect("keyframe_edge_memory_bytes");
    assert!(
        held <= (BOUND_MIB << 20) as f64,
        "the memory tier holds {held} bytes, over the {BOUND_MIB} MiB bound"
    );
}
