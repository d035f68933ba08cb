//! Item-item similarity by co-visitation and personal picks, in process, on every
//! core. Pure functions over a [`Snapshot`]; the database side is in the parent.
//!
//! * Each viewer counts with their most recent `max_titles_per_user` titles
//!   (heavy viewers are capped, so one binge does not dominate).
//! * `co(a, b)` = viewers who watched both; `n(a)` = viewers who watched `a`;
//!   similarity is the cosine `co(a, b) / sqrt(n(a) · n(b))`.
//! * Each title keeps its top K by similarity (ties: smaller id first).
//! * A viewer's picks: for each of their `seed_titles` most recent titles `x`, every
//!   `y` in `top(x)` gains `sim(x, y)`; titles they watched and titles not available
//!   in their region are skipped; the reason is the seed that gave most (ties: the
//!   more recent seed).
//!
//! Memory is the snapshot (one `u32` per viewer-title pair) plus the sparse co-count
//! map, never the events. Threads split the work by title (`a mod threads`), so each
//! owns its part of the map and nothing is merged or locked.

use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::Config;

/// The viewer-title pairs the batch works on.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Title ids, sorted; a title's index orders like its id.
    pub titles: Vec<String>,
    pub users: Vec<UserTitles>,
}

/// One viewer's titles, most recent first, and their region (`None` = unknown).
#[derive(Clone, Debug)]
pub struct UserTitles {
    pub user_id: String,
    pub region: Option<u32>,
    pub titles: Vec<u32>,
}

/// Tunables of the computation.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub top_k: usize,
    pub per_user: usize,
    pub seed_titles: usize,
    pub max_titles_per_user: usize,
    pub threads: usize,
}

/// A title's similar titles, best first: `(title, similarity)`.
pub type Similar = Vec<(u32, f64)>;

/// A pick: `(title, score, reason seed title)`.
pub type Pick = (u32, f64, u32);

/// A fast hasher for the packed `u64` pair keys (multiplicative, like FxHash).
#[derive(Default)]
pub struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (x ^ (x >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 ^= self.0 >> 32;
    }
}

type PairMap = HashMap<u64, u32, BuildHasherDefault<PairHasher>>;

/// Item-item similarity: each title's top `k`, and the number of distinct
/// co-watched pairs.
pub fn similar(s: &Snapshot, p: &Params) -> (Vec<Similar>, u64) {
    let m = s.titles.len();
    let cap = p.max_titles_per_user.max(1);
    let mut n = vec![0u32; m];
    for u in &s.users {
        for &t in u.titles.iter().take(cap) {
            n[t as usize] += 1;
        }
    }
    let threads = p.threads.max(1);
    let parts: Vec<(Vec<(u32, Similar)>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let n = &n;
                scope.spawn(move || part(s, p, n, cap, t, threads))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut out = vec![Vec::new(); m];
    let mut ordered_pairs = 0;
    for (lists, pairs) in parts {
        ordered_pairs += pairs;
        for (a, list) in lists {
            out[a as usize] = list;
        }
    }
    (out, ordered_pairs / 2)
}

/// Co-counts and top `k` of the titles `a` with `a mod threads == t`.
fn part(
    s: &Snapshot,
    p: &Params,
    n: &[u32],
    cap: usize,
    t: usize,
    threads: usize,
) -> (Vec<(u32, Similar)>, u64) {
    let mut co = PairMap::default();
    for u in &s.users {
        let list = &u.titles[..u.titles.len().min(cap)];
        for &a in list {
            if a as usize % threads != t {
                continue;
            }
            for &b in list {
                if a != b {
                    *co.entry((u64::from(a) << 32) | u64::from(b)).or_insert(0) += 1;
                }
            }
        }
    }
    let pairs = co.len() as u64;
    let mut entries: Vec<(u32, u32, f64)> = co
        .into_iter()
        .map(|(key, c)| {
            let (a, b) = ((key >> 32) as u32, key as u32);
            let sim = f64::from(c) / (f64::from(n[a as usize]) * f64::from(n[b as usize])).sqrt();
            (a, b, sim)
        })
        .collect();
    entries.sort_unstable_by(|x, y| {
        x.0.cmp(&y.0)
            .then_with(|| y.2.total_cmp(&x.2))
            .then_with(|| x.1.cmp(&y.1))
    });
    let mut lists = Vec::new();
    for group in entries.chunk_by(|x, y| x.0 == y.0) {
        let list = group
            .iter()
            .take(p.top_k)
            .map(|&(_, b, s)| (b, s))
            .collect();
        lists.push((group[0].0, list));
    }
    (lists, pairs)
}

/// Personal picks of every viewer (index-aligned with `s.users`). `available[r][t]`
/// says whether title `t` may be watched in region `r`; `anywhere[t]` is for
/// viewers of unknown region.
pub fn picks(
    s: &Snapshot,
    p: &Params,
    sims: &[Similar],
    available: &[Vec<bool>],
    anywhere: &[bool],
) -> Vec<Vec<Pick>> {
    let threads = p.threads.max(1);
    let parts: Vec<Vec<(usize, Vec<Pick>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    let mut cand: HashMap<u32, (f64, u32, f64)> = HashMap::new();
                    for (i, u) in s.users.iter().enumerate() {
                        if i % threads != t {
                            continue;
                        }
                        let ok = u
                            .region
                            .and_then(|r| available.get(r as usize))
                            .map_or(anywhere, Vec::as_slice);
                        out.push((i, user_picks(u, p, sims, ok, &mut cand)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut out = vec![Vec::new(); s.users.len()];
    for part in parts {
        for (i, list) in part {
            out[i] = list;
        }
    }
    out
}

fn user_picks(
    u: &UserTitles,
    p: &Params,
    sims: &[Similar],
    ok: &[bool],
    cand: &mut HashMap<u32, (f64, u32, f64)>,
) -> Vec<Pick> {
    cand.clear();
    let mut watched: Vec<u32> = u.titles.clone();
    watched.sort_unstable();
    for &seed in u.titles.iter().take(p.seed_titles) {
        for &(y, sim) in &sims[seed as usize] {
            if watched.binary_search(&y).is_ok() || !ok.get(y as usize).copied().unwrap_or(false) {
                continue;
            }
            let c = cand.entry(y).or_insert((0.0, seed, f64::NEG_INFINITY));
            c.0 += sim;
            if sim > c.2 {
                c.1 = seed;
                c.2 = sim;
            }
        }
    }
    // The best `per_user` by (score desc, id asc): a bounded heap whose top is the
    // worst kept.
    #[derive(PartialEq)]
    struct Worst(f64, u32, u32);
    impl Eq for Worst {}
    impl PartialOrd for Worst {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Worst {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            o.0.total_cmp(&self.0).then_with(|| self.1.cmp(&o.1))
        }
    }
    let mut heap = BinaryHeap::with_capacity(p.per_user + 1);
    for (&y, &(score, seed, _)) in cand.iter() {
        heap.push(Worst(score, y, seed));
        if heap.len() > p.per_user {
            heap.pop();
        }
    }
    let mut list: Vec<Pick> = heap.into_iter().map(|w| (w.1, w.0, w.2)).collect();
    list.sort_unstable_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    list
}

/// The batch's tunables from the configuration.
pub fn params(config: &Config) -> Params {
    let threads = match config.recommend_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    Params {
        top_k: config.recommend_top_k.max(1) as usize,
        per_user: config.recommend_per_user.max(1) as usize,
        seed_titles: config.recommend_seed_titles.max(1) as usize,
        max_titles_per_user: config.recommend_max_titles_per_user.max(1) as usize,
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(users: &[(&str, &[u32])]) -> Snapshot {
        Snapshot {
            titles: ["A", "B", "C", "D", "E"].map(String::from).to_vec(),
            users: users
                .iter()
                .map(|(u, t)| UserTitles {
                    user_id: u.to_string(),
                    region: Some(0),
                    titles: t.to_vec(),
                })
                .collect(),
        }
    }

    const P: Params = Params {
        top_k: 2,
        per_user: 5,
        seed_titles: 10,
        max_titles_per_user: 100,
        threads: 3,
    };

    #[test]
    fn cosine_of_co_counts_by_hand() {
        // A=0 B=1 C=2 D=3. n: A 3, B 3, C 2, D 1.
        let s = snapshot(&[
            ("u1", &[0, 1, 2]),
            ("u2", &[1, 0]),
            ("u3", &[1, 2]),
            ("u4", &[0, 3]),
        ]);
        let (sims, pairs) = similar(&s, &P);
        assert_eq!(pairs, 4); // AB AC BC AD
        let close = |got: &Similar, want: &[(u32, f64)]| {
            assert_eq!(got.len(), want.len(), "{got:?}");
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g.0, w.0, "{got:?}");
                assert!((g.1 - w.1).abs() < 1e-12, "{got:?}");
            }
        };
        // A: B 2/3, D 1/sqrt3 (C 1/sqrt6 cut by k = 2).
        close(&sims[0], &[(1, 2.0 / 3.0), (3, 1.0 / 3f64.sqrt())]);
        close(&sims[1], &[(2, 2.0 / 6f64.sqrt()), (0, 2.0 / 3.0)]);
        close(&sims[2], &[(1, 2.0 / 6f64.sqrt()), (0, 1.0 / 6f64.sqrt())]);
        close(&sims[3], &[(0, 1.0 / 3f64.sqrt())]);
        assert!(sims[4].is_empty());
        // The same with one thread.
        let (one, _) = similar(&s, &Params { threads: 1, ..P });
        assert_eq!(one, sims);
    }

    #[test]
    fn picks_skip_watched_and_unavailable_titles() {
        let s = snapshot(&[
            ("u1", &[0, 1, 2]),
            ("u2", &[1, 0]),
            ("u3", &[1, 2]),
            ("u4", &[0, 3]),
        ]);
        let (sims, _) = similar(&s, &P);
        let all = vec![vec![true; 5]];
        let got = picks(&s, &P, &sims, &all, &[true; 5]);
        // u2 watched B then A (B most recent): C from B (0.816), D from A (0.577).
        assert_eq!(got[1].len(), 2);
        assert_eq!((got[1][0].0, got[1][0].2), (2, 1));
        assert_eq!((got[1][1].0, got[1][1].2), (3, 0));
        // u1 watched A, B, C: only D is left (from A).
        assert_eq!(got[0].iter().map(|p| p.0).collect::<Vec<_>>(), vec![3]);
        // D not available in the region: u2 gets only C.
        let no_d = vec![vec![true, true, true, false, true]];
        let got = picks(&s, &P, &sims, &no_d, &[true; 5]);
        assert_eq!(got[1].iter().map(|p| p.0).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn heavy_viewers_count_with_recent_titles_only() {
        let s = snapshot(&[("u1", &[0, 1, 2, 3]), ("u2", &[0, 1])]);
        let (sims, _) = similar(
            &s,
            &Params {
                max_titles_per_user: 2,
                ..P
            },
        );
        // u1 counts as {A, B}: C and D are in nobody's capped list.
        assert_eq!(sims[0].iter().map(|x| x.0).collect::<Vec<_>>(), vec![1]);
        assert!(sims[2].is_empty() && sims[3].is_empty());
    }
}
