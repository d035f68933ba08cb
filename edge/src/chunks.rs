//! The chunk store: cached objects' bytes as fixed-size chunks, and the chunks
//! being fetched right now.
//!
//! A chunk is keyed by its object's generation (a number given to each stored
//! representation, so a changed object never mixes with its old bytes) and its
//! index. The memory tier is a moka cache weighed by bytes, with TinyLFU admission
//! keeping one-hit wonders out; the first and last chunks of media objects (where
//! players read the index) live in a smaller tier of their own so that scans of
//! the middle of large objects cannot push them out.
//!
//! Coalescing: the first request for a missing chunk starts one fetch; everyone who
//! asks for that chunk while it is in flight joins it and reads its bytes as they
//! arrive. A failed fetch fails every reader (their responses are aborted) and is
//! forgotten, so the next request retries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use keyframe_http::shards::ShardedCounter;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

/// (object generation, chunk index)
pub type ChunkKey = (u64, u64);

/// Per-entry overhead counted by the weigher, so tiny chunks are not free.
const ENTRY_OVERHEAD: u32 = 128;

#[derive(Debug)]
enum Status {
    Running,
    Done,
    Failed(String),
}

#[derive(Debug)]
struct FlightState {
    /// The bytes as they arrived, until the chunk is whole.
    pieces: Vec<Bytes>,
    /// The whole chunk, once done: `pieces` is emptied then, so that buffers of
    /// the upstream connection are not held for as long as a slow reader reads.
    whole: Option<Bytes>,
    status: Status,
}

/// A chunk being fetched: its bytes so far, and a way to wait for more.
#[derive(Debug)]
pub struct InFlight {
    key: ChunkKey,
    /// The chunk's expected length.
    pub len: u64,
    /// Where the finished chunk's bytes go.
    buffers: Arc<Buffers>,
    state: Mutex<FlightState>,
    tx: watch::Sender<u64>,
    /// Fetched ahead of its reader (read-ahead): kept in the store's window of
    /// recent chunks once done.
    ahead: std::sync::atomic::AtomicBool,
    /// The request whose fetch this is, for the readers that join it to log.
    pub by: std::sync::OnceLock<keyframe_http::access::RequestId>,
}

/// The error a reader sees when the fetch it joined failed.
#[derive(Debug, thiserror::Error)]
#[error("upstream fetch failed: {0}")]
pub struct FetchFailed(pub String);

impl InFlight {
    fn new(key: ChunkKey, len: u64, buffers: Arc<Buffers>) -> Self {
        InFlight {
            key,
            len,
            buffers,
            state: Mutex::new(FlightState {
                pieces: Vec::new(),
                whole: None,
                status: Status::Running,
            }),
            tx: watch::channel(0).0,
            ahead: std::sync::atomic::AtomicBool::new(false),
            by: std::sync::OnceLock::new(),
        }
    }

    /// Marks this fetch as read ahead of its reader.
    pub fn mark_ahead(&self) {
        self.ahead.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FlightState> {
        // A panic while holding this lock cannot leave the state torn (every
        // update is a single push or assignment), so recover from poisoning.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends bytes that arrived from upstream.
    pub fn push(&self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.lock().pieces.push(b);
        self.tx.send_modify(|v| *v += 1);
    }

    fn finish(&self) -> Result<Bytes, FetchFailed> {
        let mut st = self.lock();
        let total: usize = st.pieces.iter().map(Bytes::len).sum();
        if total as u64 != self.len {
            let why = format!(
                "chunk {:?}: got {total} bytes, expected {}",
                self.key, self.len
            );
            st.status = Status::Failed(why.clone());
            drop(st);
            self.tx.send_modify(|v| *v += 1);
            return Err(FetchFailed(why));
        }
        // Always copied, even from one piece: a piece may be a slice of a larger
        // buffer (the upstream connection's, a chunk file's) that it would pin.
        let whole = self.buffers.chunk(&st.pieces, total);
        st.pieces = Vec::new();
        st.whole = Some(whole.clone());
        st.status = Status::Done;
        drop(st);
        self.tx.send_modify(|v| *v += 1);
        Ok(whole)
    }

    fn fail(&self, why: String) {
        self.lock().status = Status::Failed(why);
        self.tx.send_modify(|v| *v += 1);
    }

    /// The bytes `[lo, hi)` of this chunk, yielded as they arrive.
    pub fn read(
        self: Arc<Self>,
        lo: u64,
        hi: u64,
    ) -> impl Stream<Item = Result<Bytes, FetchFailed>> + Send + 'static {
        let rx = self.tx.subscribe();
        futures::stream::unfold(
            (self, rx, 0usize, 0u64),
            move |(flight, mut rx, mut idx, mut pos)| async move {
                loop {
                    if pos >= hi {
                        return None;
                    }
                    let step = {
                        let st = flight.lock();
                        if let Some(w) = &st.whole {
                            // Done: the rest comes from the whole chunk.
                            let a = pos.max(lo) as usize;
                            let b = (hi as usize).min(w.len());
                            let rest = (a < b).then(|| w.slice(a..b));
                            drop(st);
                            return rest.map(|r| (Ok(r), (flight, rx, idx, u64::MAX)));
                        }
                        if idx < st.pieces.len() {
                            let p = st.pieces[idx].clone();
                            Ok(Some(p))
                        } else {
                            match &st.status {
                                Status::Running => Ok(None),
                                Status::Done => Err(None),
                                Status::Failed(w) => Err(Some(w.clone())),
                            }
                        }
                    };
                    match step {
                        Ok(Some(piece)) => {
                            idx += 1;
                            let start = pos;
                            let end = pos + piece.len() as u64;
                            pos = end;
                            if end <= lo || start >= hi {
                                continue;
                            }
                            let a = lo.saturating_sub(start) as usize;
                            let b = (hi.min(end) - start) as usize;
                            return Some((Ok(piece.slice(a..b)), (flight, rx, idx, pos)));
                        }
                        Ok(None) => {
                            if rx.changed().await.is_err() {
                                return Some((
                                    Err(FetchFailed("fetch abandoned".into())),
                                    (flight, rx, idx, u64::MAX),
                                ));
                            }
                        }
                        Err(None) => {
                            // Done, and everything was read: the chunk was shorter
                            // than asked, which `finish` already turned into a failure.
                            return None;
                        }
                        Err(Some(why)) => {
                            return Some((Err(FetchFailed(why)), (flight, rx, idx, u64::MAX)));
                        }
                    }
                }
            },
        )
    }
}

/// Chunks at least this long get a buffer mapped from the OS of their own.
const MAPPED_MIN: usize = 64 << 10;

/// How finished chunks are held. A chunk of 64 KiB or more is copied into a
/// mapping of its own, so that when it is evicted its memory goes back to the OS
/// at once instead of into the allocator's free lists, where 1 MiB holes fragment
/// and keep the process's RSS far above the memory tier's bound:
/// * with `sealed`, a sealed memfd (`zerocopy::sealed`: plain HTTP connections send
///   its slices with `sendfile`, without a copy);
/// * else an anonymous mapping. Up to `keep` mappings of exactly `size` bytes (the
///   chunk size) are kept when their chunks are dropped and reused, already faulted
///   in: a fresh mapping costs a page fault and a zeroed page per 4 KiB, which was
///   a third of the edge's CPU on cold misses.
#[derive(Debug)]
pub struct Buffers {
    sealed: bool,
    size: usize,
    keep: usize,
    free: Mutex<Vec<memmap2::MmapMut>>,
}

/// A chunk's anonymous mapping, given back to its [`Buffers`] when dropped.
struct Mapped {
    map: Option<memmap2::MmapMut>,
    len: usize,
    home: Arc<Buffers>,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        self.map.as_deref().map_or(&[], |m| &m[..self.len])
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if let Some(m) = self.map.take() {
            self.home.give_back(m);
        }
    }
}

impl Buffers {
    /// `keep` mappings of `size` bytes are kept for reuse (0: none).
    pub fn new(sealed: bool, size: usize, keep: usize) -> Arc<Self> {
        Arc::new(Buffers {
            sealed,
            size,
            keep,
            free: Mutex::new(Vec::new()),
        })
    }

    fn give_back(&self, m: memmap2::MmapMut) {
        if m.len() == self.size {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            if free.len() < self.keep {
                free.push(m);
            }
        }
        // Otherwise `m` drops here: unmapped, back to the OS.
    }

    /// Mappings waiting for reuse (for tests).
    pub fn kept(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn mapping(&self, len: usize) -> Option<memmap2::MmapMut> {
        if len == self.size {
            let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
            if reused.is_some() {
                return reused;
            }
        }
        // Faulted in with one call rather than a fault per page.
        memmap2::MmapOptions::new()
            .len(len)
            .populate()
            .map_anon()
            .ok()
    }

    /// One buffer holding `pieces` (their first `total` bytes).
    pub fn chunk(self: &Arc<Self>, pieces: &[Bytes], total: usize) -> Bytes {
        if total >= MAPPED_MIN {
            if self.sealed {
                if let Some(b) = keyframe_http::zerocopy::sealed(pieces, total) {
                    return b;
                }
            }
            if let Some(mut m) = self.mapping(total) {
                let mut at = 0;
                for p in pieces {
                    let n = p.len().min(total - at);
                    m[at..at + n].copy_from_slice(&p[..n]);
                    at += n;
                }
                return Bytes::from_owner(Mapped {
                    map: Some(m),
                    len: total,
                    home: self.clone(),
                });
            }
        }
        let mut b = BytesMut::with_capacity(total);
        for p in pieces {
            b.extend_from_slice(p);
        }
        b.freeze()
    }
}

/// Where a chunk's bytes come from.
#[derive(Debug)]
pub enum Source {
    /// Cached.
    Ready(Bytes),
    /// Being fetched; `leader` is true for the caller that must start the fetch.
    Flight { flight: Arc<InFlight>, leader: bool },
}

/// Counters the store keeps for metrics.
#[derive(Debug, Default)]
pub struct ChunkStats {
    /// Kept per thread: every hit counts here.
    pub hits: ShardedCounter,
    pub misses: Counter,
    pub coalesced: Counter,
    pub evictions: Counter,
}

/// The memory tiers of the chunk store and the in-flight table.
pub struct ChunkStore {
    main: moka::sync::Cache<ChunkKey, Bytes>,
    favoured: moka::sync::Cache<ChunkKey, Bytes>,
    inflight: Mutex<HashMap<ChunkKey, Arc<InFlight>>>,
    /// Bytes inserted since the tiers last applied their pending writes, and how
    /// many may be before they must (see `insert`).
    unsynced: AtomicU64,
    /// Where finished chunks go.
    buffers: Arc<Buffers>,
    sync_every: u64,
    /// Where completed chunks are written behind, if anywhere (the disk tier).
    spill: Option<Arc<dyn Fn(ChunkKey, Bytes) + Send + Sync>>,
    /// The chunks read ahead last, whatever the tiers' admission made of them, up to
    /// `recent_cap` bytes (a sixteenth of the capacity, taken from the main tier's
    /// share): a player's next request finds the chunk read ahead for it even when
    /// TinyLFU turned it away as a one-hit wonder. A window in front of TinyLFU, as
    /// in W-TinyLFU.
    recent: Mutex<Recent>,
    recent_cap: u64,
    pub stats: ChunkStats,
}

#[derive(Default)]
struct Recent {
    order: std::collections::VecDeque<ChunkKey>,
    chunks: HashMap<ChunkKey, Bytes>,
    bytes: u64,
}

impl std::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStore")
            .field("main_bytes", &self.main.weighted_size())
            .field("favoured_bytes", &self.favoured.weighted_size())
            .finish()
    }
}

fn weigh(_: &ChunkKey, b: &Bytes) -> u32 {
    u32::try_from(b.len())
        .unwrap_or(u32::MAX)
        .saturating_add(ENTRY_OVERHEAD)
}

impl ChunkStore {
    /// A store bounded by `capacity` bytes in memory; an eighth of it is kept for
    /// favoured chunks and a sixteenth for the window of chunks read ahead. `spill`
    /// receives every chunk fetched from upstream (the disk tier writes it behind,
    /// so it survives eviction and restarts).
    pub fn new(capacity: u64, spill: Option<Arc<dyn Fn(ChunkKey, Bytes) + Send + Sync>>) -> Self {
        let favoured_cap = capacity / 8;
        let recent_cap = capacity / 16;
        let evictions = Counter::default();
        let build = |cap: u64| {
            let ev = evictions.clone();
            moka::sync::Cache::builder()
                .max_capacity(cap)
                .weigher(weigh)
                .support_invalidation_closures()
                .eviction_listener(move |_: Arc<ChunkKey>, _: Bytes, cause| {
                    if cause.was_evicted() {
                        ev.inc();
                    }
                })
                .build()
        };
        ChunkStore {
            main: build(capacity - favoured_cap - recent_cap),
            favoured: build(favoured_cap),
            inflight: Mutex::new(HashMap::new()),
            unsynced: AtomicU64::new(0),
            sync_every: (capacity / 32).max(1 << 20),
            buffers: Buffers::new(false, 0, 0),
            spill,
            recent: Mutex::new(Recent::default()),
            recent_cap,
            stats: ChunkStats {
                evictions,
                ..ChunkStats::default()
            },
        }
    }

    /// The cached chunk, if in memory.
    pub fn get(&self, key: &ChunkKey) -> Option<Bytes> {
        self.main
            .get(key)
            .or_else(|| self.favoured.get(key))
            .or_else(|| self.recent(key))
    }

    /// A chunk read ahead lately that the tiers did not admit: offered to them
    /// again (asked for twice, it now has the frequency to get in).
    fn recent(&self, key: &ChunkKey) -> Option<Bytes> {
        let b = self
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .chunks
            .get(key)
            .cloned()?;
        self.main.insert(*key, b.clone());
        Some(b)
    }

    /// The cached chunk, if in memory, counted as a hit.
    pub fn hit(&self, key: &ChunkKey) -> Option<Bytes> {
        let b = self.get(key)?;
        self.stats.hits.inc();
        Some(b)
    }

    /// Stores a chunk; `favoured` chunks go to their own tier.
    ///
    /// moka applies inserts, evictions and admission decisions in batches of up to
    /// 64 writes; with 1 MiB chunks that is 64 MiB held beyond the bound. So the
    /// tiers apply their pending writes whenever a thirty-second of the capacity
    /// has been inserted since they last did.
    pub fn insert(&self, key: ChunkKey, bytes: Bytes, favoured: bool) {
        let n = bytes.len() as u64 + u64::from(ENTRY_OVERHEAD);
        let tier = if favoured { &self.favoured } else { &self.main };
        tier.insert(key, bytes);
        if self.unsynced.fetch_add(n, Ordering::Relaxed) + n >= self.sync_every {
            self.unsynced.store(0, Ordering::Relaxed);
            self.main.run_pending_tasks();
            self.favoured.run_pending_tasks();
        }
    }

    /// Finished chunks go into sealed memfds, which plain connections send with
    /// `sendfile` (one descriptor per chunk), or into anonymous mappings of which
    /// those of `chunk_size` are reused, up to a thirty-second of the capacity (the
    /// slack the tiers already allow between syncs).
    pub fn with_buffers(mut self, sealed: bool, chunk_size: u64, capacity: u64) -> Self {
        let keep = usize::try_from(capacity / 32 / chunk_size.max(1)).unwrap_or(0);
        let size = usize::try_from(chunk_size).unwrap_or(0);
        self.buffers = Buffers::new(sealed, size, keep);
        self
    }

    /// The chunk from memory, or the fetch to join, or a new fetch to lead.
    pub fn source(&self, key: ChunkKey, len: u64) -> Source {
        if let Some(b) = self.hit(&key) {
            return Source::Ready(b);
        }
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = map.get(&key) {
            self.stats.coalesced.inc();
            return Source::Flight {
                flight: f.clone(),
                leader: false,
            };
        }
        // Re-check under the lock: a fetch may have finished since the first look.
        if let Some(b) = self.get(&key) {
            return Source::Ready(b);
        }
        self.stats.misses.inc();
        let f = Arc::new(InFlight::new(key, len, self.buffers.clone()));
        map.insert(key, f.clone());
        Source::Flight {
            flight: f,
            leader: true,
        }
    }

    /// Whether a chunk is cached or being fetched.
    pub fn present(&self, key: &ChunkKey) -> bool {
        self.main.contains_key(key)
            || self.favoured.contains_key(key)
            || self
                .recent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .chunks
                .contains_key(key)
            || self
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(key)
    }

    /// Completes a fetch: the chunk is cached and readers finish.
    pub fn complete(&self, flight: &InFlight, favoured: bool) -> Result<(), FetchFailed> {
        let res = flight.finish();
        if let Ok(b) = &res {
            if flight.ahead.load(Ordering::Relaxed) {
                self.keep_recent(flight.key, b.clone());
            }
            self.insert(flight.key, b.clone(), favoured);
            if let Some(s) = &self.spill {
                s(flight.key, b.clone());
            }
        }
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&flight.key);
        res.map(|_| ())
    }

    /// Puts a chunk read ahead in the window of recent chunks, whatever the tiers'
    /// admission makes of it.
    fn keep_recent(&self, key: ChunkKey, bytes: Bytes) {
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let n = bytes.len() as u64;
        if r.chunks.insert(key, bytes).is_none() {
            r.order.push_back(key);
            r.bytes += n;
        }
        while r.bytes > self.recent_cap {
            let Some(old) = r.order.pop_front() else {
                break;
            };
            if let Some(b) = r.chunks.remove(&old) {
                r.bytes -= b.len() as u64;
            }
        }
    }

    /// Fails a fetch: its readers see an error, and the next request retries.
    pub fn abort(&self, flight: &InFlight, why: String) {
        flight.fail(why);
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&flight.key);
    }

    /// Drops every chunk of a generation (a hard purge).
    pub fn drop_generation(&self, generation: u64) {
        {
            let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            let Recent {
                order,
                chunks,
                bytes,
            } = &mut *r;
            order.retain(|k| {
                if k.0 != generation {
                    return true;
                }
                if let Some(b) = chunks.remove(k) {
                    *bytes -= b.len() as u64;
                }
                false
            });
        }
        let _ = self
            .main
            .invalidate_entries_if(move |k, _| k.0 == generation);
        let _ = self
            .favoured
            .invalidate_entries_if(move |k, _| k.0 == generation);
    }

    /// Bytes held by the memory tiers.
    pub fn memory_bytes(&self) -> u64 {
        self.main.run_pending_tasks();
        self.favoured.run_pending_tasks();
        self.main.weighted_size() + self.favoured.weighted_size()
    }

    /// Whether evicted chunks go to a disk tier.
    pub fn spills(&self) -> bool {
        self.spill.is_some()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn chunk_buffers_of_the_chunk_size_are_reused_and_hold_the_right_bytes() {
        let size = 256 << 10;
        let buffers = Buffers::new(false, size, 1);
        let piece = |v: u8, n: usize| Bytes::from(vec![v; n]);
        let a = buffers.chunk(&[piece(1, 100_000), piece(2, size)], size);
        assert_eq!(a.len(), size);
        assert!(a[..100_000].iter().all(|&b| b == 1) && a[100_000..].iter().all(|&b| b == 2));
        let at = a.as_ptr();
        let b = buffers.chunk(&[piece(3, size)], size);
        assert_ne!(b.as_ptr(), at, "a live chunk's buffer is never handed out");
        drop(a);
        assert_eq!(buffers.kept(), 1);
        drop(b);
        assert_eq!(buffers.kept(), 1, "no more than `keep` are kept");
        let c = buffers.chunk(&[piece(4, size)], size);
        assert_eq!(c.as_ptr(), at, "the kept buffer is reused");
        assert_eq!(buffers.kept(), 0);
        assert!(
            c.iter().all(|&b| b == 4),
            "a reused buffer is overwritten whole"
        );
        // Other sizes are mapped fresh and never kept.
        let d = buffers.chunk(&[piece(5, 70_000)], 70_000);
        assert!(d.iter().all(|&b| b == 5));
        drop(d);
        assert_eq!(buffers.kept(), 0);
        drop(c);
        assert_eq!(buffers.kept(), 1);
    }

    use super::*;
    use futures::StreamExt;

    async fn collect(s: impl Stream<Item = Result<Bytes, FetchFailed>>) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        futures::pin_mut!(s);
        while let Some(p) = s.next().await {
            out.extend_from_slice(&p.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn readers_get_bytes_as_they_arrive_and_the_chunk_is_cached() {
        let store = ChunkStore::new(1 << 20, None);
        let Source::Flight {
            flight,
            leader: true,
        } = store.source((1, 0), 10)
        else {
            panic!("expected to lead")
        };
        let Source::Flight {
            flight: joined,
            leader: false,
        } = store.source((1, 0), 10)
        else {
            panic!("expected to join")
        };
        let r1 = tokio::spawn(collect(flight.clone().read(0, 10)));
        let r2 = tokio::spawn(collect(joined.read(3, 7)));
        flight.push(Bytes::from_static(b"0123"));
        tokio::task::yield_now().await;
        flight.push(Bytes::from_static(b"456789"));
        store.complete(&flight, false).expect("complete");
        assert_eq!(r1.await.expect("join").expect("ok"), b"0123456789");
        assert_eq!(r2.await.expect("join").expect("ok"), b"3456");
        assert!(matches!(store.source((1, 0), 10), Source::Ready(b) if &b[..] == b"0123456789"));
        assert_eq!(store.stats.coalesced.get(), 1);
    }

    #[tokio::test]
    async fn a_failed_fetch_fails_every_reader_and_is_retried() {
        let store = ChunkStore::new(1 << 20, None);
        let Source::Flight { flight, .. } = store.source((2, 5), 8) else {
            panic!()
        };
        let r = tokio::spawn(collect(flight.clone().read(0, 8)));
        flight.push(Bytes::from_static(b"abc"));
        store.abort(&flight, "upstream reset".into());
        assert!(r.await.expect("join").is_err());
        assert!(matches!(
            store.source((2, 5), 8),
            Source::Flight { leader: true, .. }
        ));
    }

    #[tokio::test]
    async fn a_short_chunk_is_a_failure_not_a_cached_truncation() {
        let store = ChunkStore::new(1 << 20, None);
        let Source::Flight { flight, .. } = store.source((3, 0), 8) else {
            panic!()
        };
        let r = tokio::spawn(collect(flight.clone().read(0, 8)));
        flight.push(Bytes::from_static(b"abc"));
        assert!(store.complete(&flight, false).is_err());
        assert!(r.await.expect("join").is_err());
        assert!(store.get(&(3, 0)).is_none());
    }

    #[test]
    fn memory_stays_within_the_bound() {
        let store = ChunkStore::new(4 << 20, None);
        for i in 0..64 {
            store.insert((9, i), Bytes::from(vec![0u8; 256 << 10]), i == 0);
            // Touch each twice so TinyLFU admits some of them.
            let _ = store.get(&(9, i));
        }
        assert!(store.memory_bytes() <= 4 << 20, "{}", store.memory_bytes());
    }
}
