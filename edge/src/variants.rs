//! The index from a URL's cache key to the keys of its stored variants, so that
//! invalidating or purging one URL costs that URL's variants, not a scan of every
//! entry.
//!
//! Entries leave the entry cache on their own (evicted by size), unseen here, so
//! the index may name variants that are gone: removing those is harmless. To stay
//! bounded it is swept of them each time it has doubled since the last sweep,
//! which costs O(1) per insertion, amortised.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::policy::base_of;

/// Variants indexed (at least) before the first sweep.
const FIRST_SWEEP: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct VariantIndex {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_url: HashMap<String, HashSet<String>>,
    /// Variant keys in `by_url`.
    len: usize,
    /// `len` at which the next sweep runs.
    sweep_at: usize,
}

impl VariantIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `vkey` is stored (call after inserting it). `live` tells
    /// whether a variant key is still stored, for the sweep; it must not call
    /// back into this index.
    pub(crate) fn add(&self, vkey: &str, live: impl Fn(&str) -> bool) {
        let mut g = self.lock();
        let set = g.by_url.entry(base_of(vkey).to_string()).or_default();
        if !set.insert(vkey.to_string()) {
            return;
        }
        g.len += 1;
        if g.len >= g.sweep_at.max(FIRST_SWEEP) {
            let inner = &mut *g;
            inner.by_url.retain(|_, set| {
                set.retain(|k| live(k));
                !set.is_empty()
            });
            inner.len = inner.by_url.values().map(HashSet::len).sum();
            inner.sweep_at = inner.len * 2;
        }
    }

    /// The variant keys recorded for the URL `key`.
    pub(crate) fn of(&self, key: &str) -> Vec<String> {
        self.lock()
            .by_url
            .get(key)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The variant keys recorded for the URL `key`, forgotten here.
    pub(crate) fn take(&self, key: &str) -> Vec<String> {
        let mut g = self.lock();
        let set = g.by_url.remove(key).unwrap_or_default();
        g.len -= set.len();
        set.into_iter().collect()
    }

    /// Variant keys indexed (gone ones included until the next sweep).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::variant_key_for;
    use http::{HeaderMap, HeaderName, HeaderValue};

    fn vkey(url: &str, lang: &str) -> String {
        let mut h = HeaderMap::new();
        h.insert("accept-language", HeaderValue::from_str(lang).expect("v"));
        variant_key_for(url, &[HeaderName::from_static("accept-language")], &h)
    }

    #[test]
    fn a_url_finds_its_variants_and_only_them() {
        let idx = VariantIndex::default();
        for url in ["/a", "/a?x=1", "/ab"] {
            for lang in ["en", "fr"] {
                idx.add(&vkey(url, lang), |_| true);
            }
        }
        idx.add("/plain", |_| true);
        idx.add("/plain", |_| true);
        let mut a = idx.of("/a");
        a.sort();
        assert_eq!(a, vec![vkey("/a", "en"), vkey("/a", "fr")]);
        assert_eq!(idx.of("/plain"), vec!["/plain".to_string()]);
        assert_eq!(idx.take("/a").len(), 2);
        assert!(idx.of("/a").is_empty());
        assert_eq!(idx.of("/ab").len(), 2, "a prefix is another URL");
        assert_eq!(idx.len(), 5);
    }

    #[test]
    fn gone_variants_are_swept_and_the_index_stays_bounded() {
        let idx = VariantIndex::default();
        // Only the last 100 keys added are still stored, as if the entry cache
        // evicted the rest.
        let stored = |k: &str| k.trim_start_matches('/').parse::<usize>().unwrap_or(0) >= 99_900;
        for i in 0..100_000 {
            idx.add(&format!("/{i}"), stored);
        }
        assert!(idx.len() <= 2 * FIRST_SWEEP, "{} indexed", idx.len());
        assert_eq!(idx.of("/99999"), vec!["/99999".to_string()]);
        assert!(idx.of("/5").is_empty());
    }
}
