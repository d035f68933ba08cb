//! The disk tier: chunks the memory tier evicts spill to local files, which survive
//! a restart, carry a checksum verified on every read, and are evicted by size.
//!
//! Layout under the cache directory:
//! * `chunks/<generation>-<index>.kfc` — magic `KFC1`, CRC-32 of the payload (LE u32),
//!   payload length (LE u64), payload;
//! * `entries/<generation>.json` — the representation's metadata, so a restarted
//!   edge can serve its chunks.
//!
//! Writes happen on a thread of their own behind a bounded queue: when the disk
//! cannot keep up, spilled chunks are dropped (they can be fetched again), never
//! queued without bound.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use crate::chunks::ChunkKey;
use crate::entry::Entry;
use crate::policy::{self, ResponseDirectives};

const MAGIC: &[u8; 4] = b"KFC1";
const HEADER_LEN: usize = 16;

enum Job {
    Chunk(ChunkKey, Bytes),
    Entry(u64, Vec<u8>),
    Forget(u64),
}

/// The disk tier of the chunk cache.
pub struct DiskTier {
    dir: PathBuf,
    index: moka::sync::Cache<ChunkKey, u32>,
    tx: SyncSender<Job>,
}

impl std::fmt::Debug for DiskTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTier").field("dir", &self.dir).finish()
    }
}

/// An entry as written to disk.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredEntry {
    pub vkey: String,
    pub key: String,
    pub generation: u64,
    pub headers: Vec<(String, String)>,
    pub upstream_headers: Vec<(String, String)>,
    pub length: u64,
    pub ranges: bool,
    pub request_time_ms: u64,
    pub response_time_ms: u64,
    pub favour_ends: bool,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.to_string(), v.to_string())))
        .collect()
}

fn headers(p: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in p {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(n.as_str()), HeaderValue::from_str(v)) {
            h.append(n, v);
        }
    }
    h
}

impl StoredEntry {
    /// The on-disk form of an entry stored under `vkey`.
    pub fn from_entry(vkey: &str, e: &Entry) -> Self {
        StoredEntry {
            vkey: vkey.to_string(),
            key: e.key.clone(),
            generation: e.generation,
            headers: pairs(&e.headers),
            upstream_headers: pairs(&e.upstream_headers),
            length: e.length,
            ranges: e.ranges,
            request_time_ms: ms(e.request_time),
            response_time_ms: ms(e.response_time),
            favour_ends: e.favour_ends,
        }
    }

    /// The entry again, with its freshness recomputed from its headers.
    pub fn into_entry(self, targeted: &[&str]) -> (String, Entry) {
        let h = headers(&self.headers);
        let directives = ResponseDirectives::for_shared_cache(&h, targeted);
        let lifetime =
            policy::freshness_lifetime(&h, &directives, StatusCode::OK).unwrap_or_default();
        // Entries written by older versions kept the whole request.
        let upstream_headers = policy::vary_request_headers(&h, &headers(&self.upstream_headers));
        let request_time = SystemTime::UNIX_EPOCH + Duration::from_millis(self.request_time_ms);
        let response_time = SystemTime::UNIX_EPOCH + Duration::from_millis(self.response_time_ms);
        (
            self.vkey,
            Entry {
                initial_age: policy::current_age(&h, request_time, response_time, response_time),
                generation: self.generation,
                key: self.key,
                status: StatusCode::OK,
                inline: None,
                headers: h,
                length: self.length,
                ranges: self.ranges,
                request_time,
                response_time,
                lifetime,
                directives,
                upstream_headers,
                purged: Default::default(),
                favour_ends: self.favour_ends,
                last_end: std::sync::atomic::AtomicU64::new(u64::MAX),
            },
        )
    }
}

fn chunk_path(dir: &Path, (generation, idx): ChunkKey) -> PathBuf {
    dir.join("chunks")
        .join(format!("{generation:016x}-{idx:016x}.kfc"))
}

fn entry_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join("entries").join(format!("{generation:016x}.json"))
}

fn parse_chunk_name(name: &str) -> Option<ChunkKey> {
    let stem = name.strip_suffix(".kfc")?;
    let (g, i) = stem.split_once('-')?;
    Some((
        u64::from_str_radix(g, 16).ok()?,
        u64::from_str_radix(i, 16).ok()?,
    ))
}

/// Encodes a chunk file.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes and verifies a chunk file.
pub fn decode(file: Bytes) -> Option<Bytes> {
    if file.len() < HEADER_LEN || &file[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(file[4..8].try_into().ok()?);
    let len = u64::from_le_bytes(file[8..16].try_into().ok()?);
    let payload = file.slice(HEADER_LEN..);
    (payload.len() as u64 == len && crc32fast::hash(&payload) == crc).then_some(payload)
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(data)?;
    drop(f);
    fs::rename(&tmp, path)
}

impl DiskTier {
    /// Opens (creating when missing) a disk tier of `capacity` bytes in `dir`, and
    /// returns the entries a previous run left.
    pub fn open(dir: &Path, capacity: u64) -> io::Result<(Arc<DiskTier>, Vec<StoredEntry>)> {
        fs::create_dir_all(dir.join("chunks"))?;
        fs::create_dir_all(dir.join("entries"))?;
        let evict_dir = dir.to_path_buf();
        let index: moka::sync::Cache<ChunkKey, u32> = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(|_, size: &u32| *size)
            .eviction_listener(move |k: Arc<ChunkKey>, _, cause| {
                if cause != moka::notification::RemovalCause::Replaced {
                    let _ = fs::remove_file(chunk_path(&evict_dir, *k));
                }
            })
            .build();
        for e in fs::read_dir(dir.join("chunks"))? {
            let e = e?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            match parse_chunk_name(name) {
                Some(key) => {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    index.insert(key, u32::try_from(size).unwrap_or(u32::MAX));
                }
                None => {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let mut entries = Vec::new();
        for e in fs::read_dir(dir.join("entries"))? {
            let path = e?.path();
            match fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<StoredEntry>(&b).ok())
            {
                Some(s) => entries.push(s),
                None => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let (tx, rx) = sync_channel::<Job>(64);
        let wdir = dir.to_path_buf();
        let windex = index.clone();
        std::thread::Builder::new()
            .name("keyframe-disk".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Chunk(key, bytes) => {
                            let path = chunk_path(&wdir, key);
                            match write_atomic(&path, &encode(&bytes)) {
                                Ok(()) => windex.insert(key, (bytes.len() + HEADER_LEN) as u32),
                                Err(e) => tracing::warn!(error = %e, "disk tier write failed"),
                            }
                        }
                        Job::Entry(generation, json) => {
                            if let Err(e) = write_atomic(&entry_path(&wdir, generation), &json) {
                                tracing::warn!(error = %e, "disk tier entry write failed");
                            }
                        }
                        Job::Forget(generation) => {
                            let _ = fs::remove_file(entry_path(&wdir, generation));
                            let _ = windex.invalidate_entries_if(move |k, _| k.0 == generation);
                        }
                    }
                }
            })?;
        index.run_pending_tasks();
        Ok((
            Arc::new(DiskTier {
                dir: dir.to_path_buf(),
                index,
                tx,
            }),
            entries,
        ))
    }

    /// Queues an evicted chunk for writing; dropped when the queue is full.
    pub fn spill(&self, key: ChunkKey, bytes: Bytes) {
        if !self.index.contains_key(&key) {
            let _ = self.tx.try_send(Job::Chunk(key, bytes));
        }
    }

    /// Writes an entry's metadata (blocking briefly when the queue is full: entries
    /// are small and must not be lost, or their chunks become unreachable).
    pub fn save_entry(&self, vkey: &str, e: &Entry) {
        if e.inline.is_some() {
            // Small answers (a 404, a redirect) live in memory only.
            return;
        }
        if let Ok(json) = serde_json::to_vec(&StoredEntry::from_entry(vkey, e)) {
            let _ = self.tx.try_send(Job::Entry(e.generation, json));
        }
    }

    /// Forgets a generation: its entry file and chunk files.
    pub fn forget(&self, generation: u64) {
        let _ = self.tx.try_send(Job::Forget(generation));
    }

    /// Whether a chunk is on disk.
    pub fn contains(&self, key: &ChunkKey) -> bool {
        self.index.contains_key(key)
    }

    /// Reads and verifies a chunk; a corrupt file is deleted and reads as missing.
    pub async fn read(&self, key: ChunkKey) -> Option<Bytes> {
        let path = chunk_path(&self.dir, key);
        let file = tokio::task::spawn_blocking(move || fs::read(path))
            .await
            .ok()?
            .ok()?;
        match decode(Bytes::from(file)) {
            Some(b) => {
                // Count the hit for the size-bounded eviction policy.
                let _ = self.index.get(&key);
                Some(b)
            }
            None => {
                tracing::warn!(?key, "disk tier chunk failed its checksum; dropping it");
                self.index.invalidate(&key);
                None
            }
        }
    }

    /// Bytes on disk (as the index counts them).
    pub fn bytes(&self) -> u64 {
        self.index.run_pending_tasks();
        self.index.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_files_round_trip_and_catch_corruption() {
        let payload = b"some chunk bytes".to_vec();
        let file = encode(&payload);
        assert_eq!(
            decode(Bytes::from(file.clone())).as_deref(),
            Some(&payload[..])
        );
        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode(Bytes::from(bad)).is_none());
        assert!(decode(Bytes::from(file[..10].to_vec())).is_none());
        assert_eq!(
            parse_chunk_name("00000000000000ff-0000000000000002.kfc"),
            Some((255, 2))
        );
        assert_eq!(parse_chunk_name("junk"), None);
    }

    #[tokio::test]
    async fn chunks_survive_a_reopen_and_corrupt_ones_are_dropped() {
        let tmp = tempfile::tempdir().expect("tmp");
        {
            let (disk, _) = DiskTier::open(tmp.path(), 1 << 20).expect("open");
            disk.spill((1, 0), Bytes::from_static(b"hello"));
            disk.spill((1, 1), Bytes::from_static(b"world"));
            for _ in 0..100 {
                if disk.contains(&(1, 1)) && disk.contains(&(1, 0)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Corrupt one file behind the cache's back.
        let p = chunk_path(tmp.path(), (1, 1));
        let mut raw = fs::read(&p).expect("read");
        let last = raw.len() - 1;
        raw[last] ^= 0xff;
        fs::write(&p, raw).expect("write");
        let (disk, _) = DiskTier::open(tmp.path(), 1 << 20).expect("reopen");
        assert_eq!(disk.read((1, 0)).await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(disk.read((1, 1)).await, None);
        assert!(!disk.contains(&(1, 1)));
    }

    #[tokio::test]
    async fn the_disk_tier_is_bounded_by_size() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (disk, _) = DiskTier::open(tmp.path(), 64 * 1024).expect("open");
        for i in 0..64 {
            disk.spill((2, i), Bytes::from(vec![7u8; 4096]));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(disk.bytes() <= 64 * 1024, "{}", disk.bytes());
        let files = fs::read_dir(tmp.path().join("chunks")).expect("ls").count();
        assert!(files <= 64 * 1024 / 4096 + 2, "{files} files");
    }
}
