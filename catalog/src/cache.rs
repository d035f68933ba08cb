//! Hot reads: content details, users and sessions from in-process caches that change
//! events keep current (no TTLs to guess).
//!
//! Every write the catalog makes publishes a [`Change`] on a broadcast channel
//! ([`Changes`]); a listener task applies them to the [`HotCache`]. On PostgreSQL,
//! triggers (migration 0002) also announce every change with `NOTIFY`, whoever makes
//! it, and a second task feeds those into the same channel, so several catalog
//! processes and `keyframe ingest` stay in step. If notifications may have been
//! missed (a lagging listener, a lost connection), the whole cache is dropped.
//!
//! A load that raced with an invalidation must not put a stale value back: each
//! invalidation bumps an epoch, and a load that saw the epoch move while it read
//! the database removes what it inserted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::db::{Backend, Db, DbError};
use crate::meta::{Asset, Content, Session, User};

/// Something that changed in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A title, its categories, assets or rights (by content id).
    Content(String),
    /// A user's profile, password or avatar (by user id).
    User(String),
    /// A session ended (by token hash).
    Session(String),
    /// All sessions of a user ended, or all but one (by user id).
    UserSessions(String),
    /// Anything may have changed: drop everything.
    All,
}

impl Change {
    /// Parses a `NOTIFY` payload: `content:<id>`, `user:<id>`, `session:<hash>`.
    pub fn from_payload(payload: &str) -> Option<Change> {
        let (kind, id) = payload.split_once(':')?;
        let id = id.to_string();
        match kind {
            "content" => Some(Change::Content(id)),
            "user" => Some(Change::User(id)),
            "session" => Some(Change::Session(id)),
            "user_sessions" => Some(Change::UserSessions(id)),
            _ => None,
        }
    }
}

/// A user with the assets shown beside them (avatar and variants).
#[derive(Clone, Debug, PartialEq)]
pub struct CachedUser {
    pub user: User,
    pub assets: Vec<Asset>,
}

/// The in-process caches behind hot reads.
#[derive(Debug)]
pub struct HotCache {
    content: moka::sync::Cache<String, Arc<Content>>,
    users: moka::sync::Cache<String, Arc<CachedUser>>,
    sessions: moka::sync::Cache<String, Session>,
    epoch: AtomicU64,
}

impl HotCache {
    /// Caches of at most `entries` entries each.
    pub fn new(entries: u64) -> HotCache {
        HotCache {
            content: moka::sync::Cache::new(entries),
            users: moka::sync::Cache::new(entries),
            sessions: moka::sync::Cache::new(entries),
            epoch: AtomicU64::new(0),
        }
    }

    /// Forgets what `change` made stale.
    pub fn apply(&self, change: &Change) {
        // Bump first: a load that read the database before this change and inserts
        // after this point sees the new epoch and removes its value.
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::Content(id) => self.content.invalidate(id),
            Change::User(id) => self.users.invalidate(id),
            Change::Session(hash) => self.sessions.invalidate(hash),
            Change::UserSessions(user_id) => {
                for (hash, s) in self.sessions.iter() {
                    if &s.user_id == user_id {
                        self.sessions.invalidate(hash.as_str());
                    }
                }
            }
            Change::All => {
                self.content.invalidate_all();
                self.users.invalidate_all();
                self.sessions.invalidate_all();
            }
        }
    }

    /// Reads through `cache`: a hit, or a load whose result is kept unless an
    /// invalidation happened meanwhile.
    async fn read_through<V, F>(
        &self,
        cache: &moka::sync::Cache<String, V>,
        key: &str,
        load: F,
    ) -> Result<V, DbError>
    where
        V: Clone + Send + Sync + 'static,
        F: std::future::Future<Output = Result<V, DbError>>,
    {
        if let Some(v) = cache.get(key) {
            return Ok(v);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let v = load.await?;
        cache.insert(key.to_string(), v.clone());
        if self.epoch.load(Ordering::SeqCst) != epoch {
            cache.invalidate(key);
        }
        Ok(v)
    }

    /// A title with its categories, assets and rights.
    pub async fn content(&self, db: &Db, id: &str) -> Result<Arc<Content>, DbError> {
        self.read_through(&self.content, id, async {
            db.content(id).await.map(Arc::new)
        })
        .await
    }

    /// A user with their avatar assets.
    pub async fn user(&self, db: &Db, id: &str) -> Result<Arc<CachedUser>, DbError> {
        self.read_through(&self.users, id, async {
            let user = db.user_by_id(id).await?;
            let assets = db.user_assets(id).await?;
            Ok(Arc::new(CachedUser { user, assets }))
        })
        .await
    }

    /// The session stored under a token hash (expired or not: the caller decides).
    pub async fn session(&self, db: &Db, token_hash: &str) -> Result<Session, DbError> {
        self.read_through(&self.sessions, token_hash, db.session(token_hash))
            .await
    }
}

/// The channel that announces changes; publishing also applies the change to this
/// process's cache at once, so a writer reads its own write.
#[derive(Clone, Debug)]
pub struct Changes {
    tx: broadcast::Sender<Change>,
    cache: Arc<HotCache>,
}

impl Changes {
    /// Announces `change`.
    pub fn publish(&self, change: Change) {
        self.cache.apply(&change);
        // No receiver is not an error: nobody else needs to know.
        let _ = self.tx.send(change);
    }

    /// A receiver of every change announced from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

/// Starts the tasks that keep `cache` current and returns the channel to publish on.
/// The tasks stop when `stop` is cancelled.
pub fn start(cache: Arc<HotCache>, db: &Db, stop: CancellationToken) -> Changes {
    let (tx, mut rx) = broadcast::channel(1024);
    let changes = Changes {
        tx: tx.clone(),
        cache: cache.clone(),
    };
    let listener_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = listener_stop.cancelled() => break,
                msg = rx.recv() => match msg {
                    Ok(change) => cache.apply(&change),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "cache listener lagged; dropping the cache");
                        cache.apply(&Change::All);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    });
    if db.backend() == Backend::Postgres {
        if let Some(url) = db.url() {
            tokio::spawn(listen_postgres(url.to_string(), tx, stop));
        }
    }
    changes
}

/// Feeds PostgreSQL's `keyframe_changes` notifications into the channel, and drops
/// the cache whenever notifications may have been missed.
async fn listen_postgres(url: String, tx: broadcast::Sender<Change>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let run = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen("keyframe_changes").await?;
            // Anything may have changed while nobody listened.
            let _ = tx.send(Change::All);
            tracing::debug!("listening for catalog changes");
            loop {
                match listener.try_recv().await? {
                    Some(n) => {
                        if let Some(change) = Change::from_payload(n.payload()) {
                            let _ = tx.send(change);
                        }
                    }
                    // The connection was lost; it reconnects on the next call.
                    None => {
                        let _ = tx.send(Change::All);
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            r = run => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "change notifications: listener failed; retrying");
                }
            }
        }
        let _ = tx.send(Change::All);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        assert_eq!(
            Change::from_payload("content:abc"),
            Some(Change::Content("abc".into()))
        );
        assert_eq!(
            Change::from_payload("user:u1"),
            Some(Change::User("u1".into()))
        );
        assert_eq!(Change::from_payload("nonsense"), None);
        assert_eq!(Change::from_payload("other:x"), None);
    }

    #[tokio::test]
    async fn a_load_that_raced_an_invalidation_is_not_kept() {
        let cache = HotCache::new(10);
        let s = Session {
            user_id: "u".into(),
            expires_at: 1,
        };
        let v = cache
            .read_through(&cache.sessions, "h", async {
                // The change lands while the database is being read.
                cache.apply(&Change::Session("h".into()));
                Ok(s.clone())
            })
            .await
            .expect("load");
        assert_eq!(v, s);
        assert!(cache.sessions.get("h").is_none());
        cache
            .read_through(&cache.sessions, "h", async { Ok(s.clone()) })
            .await
            .expect("load");
        assert!(cache.sessions.get("h").is_some());
        cache.apply(&Change::UserSessions("u".into()));
        assert!(cache.sessions.get("h").is_none());
    }
}
