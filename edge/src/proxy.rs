//! The cache state machine for a GET or HEAD: lookup (with `Vary`) → freshness
//! decision → serve from the entry, revalidate, fetch (coalesced) or pass; other
//! methods pass through and may invalidate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;
use http::{HeaderMap, Method, Request, Response};
use hyper::body::Incoming;
use keyframe_core::ErrorCode;
use keyframe_http::http_server::{full, json_error, Body};

use crate::entry::Entry;
use crate::fetch::{failure_code, Outcome};
use crate::metrics::Served;
use crate::policy::{self, set_cache_status, CacheStatus, Decision, Fwd, RequestDirectives};
use crate::server::{cache_key, Server};

impl Server {
    pub(crate) async fn proxy(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let (parts, body) = req.into_parts();
        if let Some(refusal) = self.check_token(&parts, peer) {
            return refusal;
        }
        let key = cache_key(&parts.uri);
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let target = self.target_of(&parts);
            let resp = self.pass(parts, body, peer, &key, Fwd::Method).await;
            self.invalidate_after(&target, &resp);
            return resp;
        }
        let req_dirs = RequestDirectives::parse(&parts.headers);
        if self.inner.pass_marks.contains_key(&key) {
            return self.pass(parts, body, peer, &key, Fwd::Bypass).await;
        }
        let Some(vkey) = self.variant_key(&key, &parts.headers) else {
            return self.pass(parts, body, peer, &key, Fwd::VaryMiss).await;
        };
        let now = SystemTime::now();
        let stale = match self.inner.entries.get(&vkey) {
            Some(entry) => {
                let age = entry.age(now);
                let decision = if entry.is_purged() {
                    Decision::MustRevalidate
                } else {
                    policy::decide(entry.lifetime, age, &entry.directives, &req_dirs)
                };
                match decision {
                    Decision::Fresh => {
                        self.count(Served::Hit);
                        let ttl = entry.lifetime.as_secs() as i64 - age.as_secs() as i64;
                        let cs = CacheStatus {
                            hit: true,
                            ttl: Some(ttl),
                            ..CacheStatus::default()
                        };
                        return self.serve(entry, &parts, peer, cs);
                    }
                    Decision::Stale {
                        serve_while_revalidate: true,
                    } => {
                        self.count(Served::Stale);
                        let me = self.clone();
                        let (k, v, p) = (key.clone(), vkey.clone(), parts.clone());
                        let e = entry.clone();
                        // A background refresh, logged in this request's span.
                        keyframe_http::access::spawn(async move {
                            let _ = me.object(&k, &v, &p, Some(e)).await;
                        });
                        let cs = CacheStatus {
                            hit: true,
                            ttl: Some(entry.lifetime.as_secs() as i64 - age.as_secs() as i64),
                            detail: Some("stale-while-revalidate".into()),
                            ..CacheStatus::default()
                        };
                        return self.serve(entry, &parts, peer, cs);
                    }
                    _ => Some(entry),
                }
            }
            None => None,
        };
        if req_dirs.only_if_cached {
            return json_error(
                ErrorCode::NotCached,
                "only-if-cached, and no fresh response is stored",
            );
        }
        if parts.method == Method::HEAD && stale.is_none() {
            return self.pass(parts, body, peer, &key, Fwd::UriMiss).await;
        }
        if req_dirs.no_store && stale.is_none() {
            return self.pass(parts, body, peer, &key, Fwd::Request).await;
        }
        let revalidating = stale.is_some();
        let (mut outcome, mut leader) = self.object(&key, &vkey, &parts, stale.clone()).await;
        if let Outcome::Entry { entry, .. } = &outcome {
            if !policy::selects(
                &key,
                &entry.headers,
                &entry.upstream_headers,
                &parts.headers,
            ) {
                // Joined a fetch for the first request of a URL whose answer turned
                // out to vary on headers this request has otherwise: not ours to
                // serve (RFC 9111 §4.1). Fetch (or join) this request's variant.
                (outcome, leader) = match self.variant_key(&key, &parts.headers) {
                    Some(mine) if mine != vkey => self.object(&key, &mine, &parts, None).await,
                    _ => (Outcome::Pass, false),
                };
                if matches!(&outcome, Outcome::Entry { entry, .. } if !policy::selects(&key, &entry.headers, &entry.upstream_headers, &parts.headers))
                {
                    outcome = Outcome::Pass;
                }
            }
        }
        if matches!(outcome, Outcome::Unshared(_))
            && !leader
            && !self.inner.pass_marks.contains_key(&key)
        {
            // The leader's answer was its own (to its range, its credentials), not
            // the URL's: this request may well get a storable one. One more fetch,
            // coalesced with the other waiters'.
            (outcome, leader) = self.object(&key, &vkey, &parts, stale.clone()).await;
        }
        match outcome {
            Outcome::Entry { entry, fwd_status } => {
                let same = stale
                    .as_ref()
                    .is_some_and(|s| s.generation == entry.generation);
                self.count(if same {
                    Served::Revalidated
                } else {
                    Served::Miss
                });
                let cs = CacheStatus {
                    fwd: Some(if revalidating {
                        Fwd::Stale
                    } else {
                        Fwd::UriMiss
                    }),
                    fwd_status: Some(fwd_status),
                    stored: true,
                    ttl: Some(entry.lifetime.as_secs() as i64),
                    ..CacheStatus::default()
                };
                self.serve(entry, &parts, peer, cs)
            }
            Outcome::Shared {
                status,
                headers,
                body,
            } => {
                if status.is_server_error() {
                    if let Some(r) =
                        self.stale_on_error(stale, &parts, peer, &req_dirs, Some(status.as_u16()))
                    {
                        return r;
                    }
                }
                self.count(Served::Pass);
                let mut r = Response::new(full(body));
                *r.status_mut() = status;
                *r.headers_mut() = headers;
                let cs = CacheStatus {
                    fwd: Some(Fwd::UriMiss),
                    fwd_status: Some(status.as_u16()),
                    ..CacheStatus::default()
                };
                set_cache_status(r.headers_mut(), cs.to_header_value(&self.inner.cache_name));
                r
            }
            Outcome::Unshared(answer) => {
                // The leader's own answer serves it; a waiter's request has not
                // gone upstream yet: it goes now (RFC 9111 §4: a response not
                // stored is not reused for another request).
                let Some(resp) = leader.then(|| answer.take()).flatten() else {
                    return self.pass(parts, body, peer, &key, Fwd::UriMiss).await;
                };
                if resp.status().is_server_error() {
                    if let Some(r) = self.stale_on_error(
                        stale,
                        &parts,
                        peer,
                        &req_dirs,
                        Some(resp.status().as_u16()),
                    ) {
                        return r;
                    }
                }
                let fwd = if revalidating {
                    Fwd::Stale
                } else {
                    Fwd::UriMiss
                };
                match self.relay(resp, &parts, fwd, true) {
                    Ok(r) => {
                        self.count(Served::Pass);
                        r
                    }
                    // An origin that answered another range than asked, without
                    // the client's first byte: ask for the client's own.
                    Err(_) => self.pass(parts, body, peer, &key, fwd).await,
                }
            }
            Outcome::Pass => self.pass(parts, body, peer, &key, Fwd::UriMiss).await,
            Outcome::Failed { status, why } => {
                if let Some(r) = self.stale_on_error(stale, &parts, peer, &req_dirs, None) {
                    return r;
                }
                tracing::warn!(key, why, "upstream fetch failed");
                let code = failure_code(status);
                let mut r = json_error(code, "no upstream answered");
                let cs = CacheStatus {
                    fwd: Some(Fwd::UriMiss),
                    detail: Some(code.as_str().into()),
                    ..CacheStatus::default()
                };
                set_cache_status(r.headers_mut(), cs.to_header_value(&self.inner.cache_name));
                r
            }
        }
    }

    /// A stale entry served in place of an upstream error where both sides'
    /// `stale-if-error` allow it (RFC 5861 §4); None where they do not.
    fn stale_on_error(
        &self,
        stale: Option<Arc<Entry>>,
        parts: &Parts,
        peer: SocketAddr,
        req_dirs: &RequestDirectives,
        fwd_status: Option<u16>,
    ) -> Option<Response<Body>> {
        let entry = stale?;
        let age = entry.age(SystemTime::now());
        if !policy::may_serve_stale_on_error(entry.lifetime, age, &entry.directives, req_dirs) {
            return None;
        }
        self.count(Served::Stale);
        let cs = CacheStatus {
            hit: true,
            fwd_status,
            detail: Some("stale-if-error".into()),
            ..CacheStatus::default()
        };
        Some(self.serve(entry, parts, peer, cs))
    }

    /// The key of the variant a request selects, or None for `Vary: *`.
    pub(crate) fn variant_key(&self, key: &str, headers: &HeaderMap) -> Option<String> {
        let Some(names) = self.inner.vary.get(key) else {
            return Some(key.to_string());
        };
        if names.iter().any(|n| n == "*") {
            return None;
        }
        Some(policy::variant_key_for(key, &names, headers))
    }
}
