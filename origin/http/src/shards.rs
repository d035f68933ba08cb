//! Metrics the hit path updates on every request, kept per thread and summed
//! when scraped.
//!
//! `prometheus-client`'s counters are one atomic each, its label families sit
//! behind an `RwLock` whose read lock is itself a write to a shared word, and
//! its histogram takes a write lock per observation. With one runtime per core
//! (the servers' default) every request then moves the same few cache lines
//! between the cores. Here each metric is [`SHARDS`] cache-line-sized slots; a
//! thread always updates the slot it was given (the per-core runtimes' threads
//! get different slots), and a scrape adds the slots up. The exposition is the
//! same as the plain metrics': same names, types, labels and buckets.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// How many slots a metric has: threads beyond this share slots (still exact,
/// only contended again).
pub const SHARDS: usize = 16;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// The slot this thread updates.
fn shard() -> usize {
    SHARD.try_with(|s| *s).unwrap_or(0)
}

/// One value per slot, each on its own cache line (128 bytes: adjacent-line
/// prefetch pairs lines on x86).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

fn slots<T: Default>() -> Arc<[Padded<T>]> {
    (0..SHARDS).map(|_| Padded(T::default())).collect()
}

/// A counter (`_total`), as `prometheus_client`'s `Counter`.
#[derive(Clone, Debug)]
pub struct ShardedCounter(Arc<[Padded<AtomicU64>]>);

impl Default for ShardedCounter {
    fn default() -> Self {
        ShardedCounter(slots())
    }
}

impl ShardedCounter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `v`.
    pub fn inc_by(&self, v: u64) {
        self.0[shard()].0.fetch_add(v, Ordering::Relaxed);
    }

    /// The sum over the slots.
    pub fn get(&self) -> u64 {
        self.0
            .iter()
            .fold(0u64, |a, s| a.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A gauge that goes up and down by one (requests in flight): a request may end
/// on another thread than it began, so one slot can go negative; the sum is right.
#[derive(Clone, Debug)]
pub struct ShardedGauge(Arc<[Padded<AtomicI64>]>);

impl Default for ShardedGauge {
    fn default() -> Self {
        ShardedGauge(slots())
    }
}

impl ShardedGauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0[shard()].0.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one away.
    pub fn dec(&self) {
        self.0[shard()].0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The sum over the slots.
    pub fn get(&self) -> i64 {
        self.0
            .iter()
            .fold(0i64, |a, s| a.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

impl TypedMetric for ShardedGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for ShardedGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A histogram with fixed bucket bounds, whose sum is kept in nanounits (so an
/// observation is two atomic adds on this thread's line, no lock).
#[derive(Clone, Debug)]
pub struct ShardedHistogram {
    /// Upper bounds, ascending; the `+Inf` bucket follows them.
    bounds: Arc<[f64]>,
    /// Per slot: the count of each bucket (not cumulative), `+Inf` last, then the
    /// sum of the observations in billionths.
    slots: Arc<[Padded<Box<[AtomicU64]>>]>,
}

impl ShardedHistogram {
    /// A histogram with these upper bounds (ascending; `+Inf` is added).
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Arc<[f64]> = bounds.into_iter().collect();
        let width = bounds.len() + 2;
        let slots = (0..SHARDS)
            .map(|_| Padded((0..width).map(|_| AtomicU64::new(0)).collect()))
            .collect();
        ShardedHistogram { bounds, slots }
    }

    /// Records `v` (seconds, bytes: any unit ≥ 0; negative counts as 0).
    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        let slot = &self.slots[shard()].0;
        slot[i].fetch_add(1, Ordering::Relaxed);
        // `as` saturates: NaN and negatives add 0, huge values u64::MAX.
        slot[self.bounds.len() + 1].fetch_add((v * 1e9) as u64, Ordering::Relaxed);
    }

    /// (sum, count, buckets as (upper bound, count)) over the slots.
    fn totals(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let n = self.bounds.len();
        let mut counts = vec![0u64; n + 1];
        let mut sum = 0u64;
        for s in self.slots.iter() {
            for (c, a) in counts.iter_mut().zip(s.0.iter()) {
                *c = c.wrapping_add(a.load(Ordering::Relaxed));
            }
            sum = sum.wrapping_add(s.0[n + 1].load(Ordering::Relaxed));
        }
        let count = counts.iter().sum();
        let buckets = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(counts)
            .collect();
        (sum as f64 / 1e9, count, buckets)
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.totals();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Counters under one label whose values are known up front (a cache status, a
/// status code), so that counting is an index, not a lookup under a lock.
/// Values never counted are not exposed, as with a `Family`.
#[derive(Clone, Debug)]
pub struct LabeledCounters<L> {
    labels: Arc<[L]>,
    /// Per slot, one count per label.
    slots: Arc<[Padded<Box<[AtomicU64]>>]>,
}

impl<L> LabeledCounters<L> {
    /// Counters for these label sets; [`LabeledCounters::inc`] takes an index into them.
    pub fn new(labels: impl IntoIterator<Item = L>) -> Self {
        let labels: Arc<[L]> = labels.into_iter().collect();
        let slots = (0..SHARDS)
            .map(|_| Padded((0..labels.len()).map(|_| AtomicU64::new(0)).collect()))
            .collect();
        LabeledCounters { labels, slots }
    }

    /// Adds one to the counter of `labels()[i]` (an index past the end adds nothing).
    pub fn inc(&self, i: usize) {
        if let Some(c) = self.slots[shard()].0.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The label sets, in the order [`LabeledCounters::inc`] indexes them.
    pub fn labels(&self) -> &[L] {
        &self.labels
    }

    /// The count of `labels()[i]`.
    pub fn get(&self, i: usize) -> u64 {
        self.slots.iter().fold(0u64, |a, s| {
            a.wrapping_add(s.0.get(i).map_or(0, |c| c.load(Ordering::Relaxed)))
        })
    }
}

impl<L> TypedMetric for LabeledCounters<L> {
    const TYPE: MetricType = MetricType::Counter;
}

impl<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static> EncodeMetric
    for LabeledCounters<L>
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (i, l) in self.labels.iter().enumerate() {
            let v = self.get(i);
            if v > 0 {
                encoder
                    .encode_family(l)?
                    .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::StatusLabels;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
    use prometheus_client::registry::Registry;

    fn text(f: impl FnOnce(&mut Registry)) -> String {
        let mut r = Registry::default();
        f(&mut r);
        let mut out = String::new();
        encode(&mut out, &r).expect("encode");
        out
    }

    /// The sharded metrics, updated from several threads, read exactly as the
    /// plain ones updated the same way: same lines, same sums.
    #[test]
    fn sharded_metrics_expose_what_the_plain_ones_would() {
        let bounds: Vec<f64> = exponential_buckets(0.0001, 2.5, 15).collect();
        let (c, g, h) = (
            ShardedCounter::default(),
            ShardedGauge::default(),
            ShardedHistogram::new(bounds.clone()),
        );
        let l = LabeledCounters::new([200u16, 206, 404].map(|status| StatusLabels { status }));
        let (pc, pg, ph) = (
            Counter::<u64>::default(),
            Gauge::<i64>::default(),
            Histogram::new(bounds.iter().copied()),
        );
        let pl = Family::<StatusLabels, Counter>::default();
        // Observations exact in both sums (multiples of 1/8 s).
        let values = [0.0, 0.125, 0.5, 2.0, 1000.0];
        std::thread::scope(|s| {
            for t in 0..6 {
                let (c, g, h, l) = (&c, &g, &h, &l);
                let (pc, pg, ph, pl) = (&pc, &pg, &ph, &pl);
                s.spawn(move || {
                    for n in 0..1000usize {
                        c.inc_by(3);
                        pc.inc_by(3);
                        g.inc();
                        pg.inc();
                        if n % 2 == 0 {
                            g.dec();
                            pg.dec();
                        }
                        let v = values[(n + t) % values.len()];
                        h.observe(v);
                        ph.observe(v);
                        if n % 3 != 0 {
                            l.inc(n % 3);
                            pl.get_or_create(&l.labels()[n % 3]).inc();
                        }
                    }
                });
            }
        });
        let sharded = text(|r| {
            r.register("c", "c", c.clone());
            r.register("g", "g", g.clone());
            r.register("h", "h", h.clone());
            r.register("l", "l", l.clone());
        });
        let plain = text(|r| {
            r.register("c", "c", pc.clone());
            r.register("g", "g", pg.clone());
            r.register("h", "h", ph.clone());
            r.register("l", "l", pl.clone());
        });
        let sorted = |t: &str| {
            let mut v: Vec<String> = t.lines().map(str::to_string).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&sharded), sorted(&plain), "{sharded}\n---\n{plain}");
        assert_eq!(c.get(), 18_000);
        assert_eq!(g.get(), 3_000);
        // A label never counted (200) is not exposed.
        assert!(!sharded.contains("status=\"200\""), "{sharded}");
    }

    #[test]
    fn threads_get_different_slots() {
        let mine = shard();
        let theirs = std::thread::spawn(shard).join().expect("thread");
        assert_ne!(mine, theirs);
    }
}
