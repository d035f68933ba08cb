//! Hot reads: content details, users, sessions and viewers' resume points from
//! in-process caches that change events keep current (no TTLs to guess), so the
//! steady state of a hot read makes no database round trip.
//!
//! Every write the catalog makes publishes a [`Change`] on a broadcast channel
//! ([`Changes`]); a listener task applies them to the [`HotCache`]. The history
//! writer publishes the (viewer, title) pairs of every commit before it answers.
//! Other processes' changes arrive too:
//!
//! * On PostgreSQL, triggers (migrations 0002 and 0005) announce every change with
//!   `NOTIFY`, whoever makes it, and a task feeds those into the same channel, so
//!   several catalog processes and `keyframe ingest` stay in step.
//! * On SQLite, triggers (migration 0005) append the same announcements to the
//!   `change_log` table, and a task on a connection of its own polls
//!   `PRAGMA data_version` every 200 ms (it changes only when another connection
//!   committed) and, when it moved, reads the log past the last row it saw
//!   (`follow_sqlite`). Only what changed is dropped; the log keeps a minute.
//!   Watch state is not logged on SQLite (one catalog process per database file;
//!   its own writer announces it).
//!
//! If announcements may have been missed (a lagging listener, a lost connection,
//! log rows trimmed before they were read), the whole cache is dropped.
//!
//! A load that raced with an invalidation must not put a stale value back: each
//! invalidation bumps an epoch, and a load that saw the epoch move while it read
//! the database removes what it inserted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
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
    /// A viewer's watch state of one title (resume point, watched).
    Watch { user_id: String, content_id: String },
    /// Any of a viewer's watch states (a history deletion).
    UserWatch(String),
    /// Anything may have changed: drop everything.
    All,
}

impl Change {
    /// Parses a `NOTIFY` payload: `content:<id>`, `user:<id>`, `session:<hash>`,
    /// `watch:<user id>:<content id>`.
    pub fn from_payload(payload: &str) -> Option<Change> {
        let (kind, id) = payload.split_once(':')?;
        Change::from_parts(kind, id)
    }

    /// A change from its kind and id (a `change_log` row, or a payload's parts).
    pub fn from_parts(kind: &str, id: &str) -> Option<Change> {
        let id = id.to_string();
        match kind {
            "content" => Some(Change::Content(id)),
            "user" => Some(Change::User(id)),
            "session" => Some(Change::Session(id)),
            "user_sessions" => Some(Change::UserSessions(id)),
            "watch" => {
                let (user_id, content_id) = id.split_once(':')?;
                Some(Change::Watch {
                    user_id: user_id.to_string(),
                    content_id: content_id.to_string(),
                })
            }
            "user_watch" => Some(Change::UserWatch(id)),
            _ => None,
        }
    }
}

/// Why a title named by a request could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TitleError {
    /// No title has this id, or the id cannot be one (it was not looked up).
    #[error("no such content")]
    NotFound,
    #[error(transparent)]
    Db(DbError),
}

/// A title's row was missing: the title is not there.
impl From<DbError> for TitleError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => TitleError::NotFound,
            e => TitleError::Db(e),
        }
    }
}

/// Whether `id` could be a content id; anything else is not looked up.
fn plausible_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A user with the assets shown beside them (avatar and variants).
#[derive(Clone, Debug, PartialEq)]
pub struct CachedUser {
    pub user: User,
    pub assets: Vec<Asset>,
}

/// Where a viewer stands in a title: the resume point (`None` below the resume
/// threshold and once finished) and whether they finished it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    pub position_ms: Option<i64>,
    pub watched: bool,
}

/// The in-process caches behind hot reads.
#[derive(Debug)]
pub struct HotCache {
    content: moka::sync::Cache<String, Arc<Content>>,
    users: moka::sync::Cache<String, Arc<CachedUser>>,
    sessions: moka::sync::Cache<String, Session>,
    /// Per (viewer, title); `None` for a title the viewer never watched.
    resume: moka::sync::Cache<(String, String), Option<Resume>>,
    epoch: AtomicU64,
    /// The resume cache's own epoch: history commits are frequent, and they need
    /// not discard loads of the other caches.
    resume_epoch: AtomicU64,
}

impl HotCache {
    /// Caches of at most `entries` entries each.
    pub fn new(entries: u64) -> HotCache {
        HotCache {
            content: moka::sync::Cache::new(entries),
            users: moka::sync::Cache::new(entries),
            sessions: moka::sync::Cache::new(entries),
            resume: moka::sync::Cache::new(entries),
            epoch: AtomicU64::new(0),
            resume_epoch: AtomicU64::new(0),
        }
    }

    /// Forgets what `change` made stale.
    pub fn apply(&self, change: &Change) {
        // Bump first: a load that read the database before this change and inserts
        // after this point sees the new epoch and removes its value.
        match change {
            Change::Watch {
                user_id,
                content_id,
            } => {
                self.resume_epoch.fetch_add(1, Ordering::SeqCst);
                self.resume
                    .invalidate(&(user_id.clone(), content_id.clone()));
                return;
            }
            Change::UserWatch(user_id) => {
                self.resume_epoch.fetch_add(1, Ordering::SeqCst);
                for (key, _) in self.resume.iter() {
                    if &key.0 == user_id {
                        self.resume.invalidate(&*key);
                    }
                }
                return;
            }
            Change::All => {
                self.resume_epoch.fetch_add(1, Ordering::SeqCst);
                self.resume.invalidate_all();
            }
            _ => {}
        }
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
            Change::Watch { .. } | Change::UserWatch(_) => {}
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
        read_through_keyed(&self.epoch, cache, key.to_string(), load).await
    }

    /// A viewer's resume point in a title; `None` if they never watched it.
    pub async fn resume(
        &self,
        db: &Db,
        user_id: &str,
        content_id: &str,
    ) -> Result<Option<Resume>, DbError> {
        let key = (user_id.to_string(), content_id.to_string());
        if let Some(v) = self.resume.get(&key) {
            return Ok(v);
        }
        read_through_keyed(&self.resume_epoch, &self.resume, key, async {
            Ok(db.watch_state(user_id, content_id).await?.map(|st| Resume {
                position_ms: st.resume_ms,
                watched: st.played,
            }))
        })
        .await
    }

    /// A title with its categories, assets and rights.
    pub async fn content(&self, db: &Db, id: &str) -> Result<Arc<Content>, DbError> {
        self.read_through(&self.content, id, async {
            db.content(id).await.map(Arc::new)
        })
        .await
    }

    /// A title named by a request (a path, a watch event): [`TitleError::NotFound`]
    /// without a database round trip for an id that cannot be a content id.
    pub async fn title(&self, db: &Db, id: &str) -> Result<Arc<Content>, TitleError> {
        if !plausible_id(id) {
            return Err(TitleError::NotFound);
        }
        Ok(self.content(db, id).await?)
    }

    /// A title a stored list names (history, trending, recommendations), or `None`
    /// when it was deleted since the list was written: lists skip it.
    pub async fn listed(&self, db: &Db, id: &str) -> Result<Option<Arc<Content>>, DbError> {
        match self.content(db, id).await {
            Ok(c) => Ok(Some(c)),
            Err(DbError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
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

/// The load half of a read-through: the loaded value is kept unless `epoch` moved
/// while it was read (an invalidation may have raced it).
async fn read_through_keyed<K, V, F>(
    epoch: &AtomicU64,
    cache: &moka::sync::Cache<K, V>,
    key: K,
    load: F,
) -> Result<V, DbError>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<V, DbError>>,
{
    let seen = epoch.load(Ordering::SeqCst);
    let v = load.await?;
    cache.insert(key.clone(), v.clone());
    if epoch.load(Ordering::SeqCst) != seen {
        cache.invalidate(&key);
    }
    Ok(v)
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

    /// Applies `change` to this process's cache only, without announcing it on the
    /// channel: for changes other processes learn from the database (the history
    /// writer's, which PostgreSQL's triggers announce), so that a commit of a
    /// thousand (viewer, title) pairs cannot make the channel's listener lag and
    /// drop the whole cache.
    pub fn apply_local(&self, change: &Change) {
        self.cache.apply(change);
    }

    /// What the history writer and the events consumer call for each (viewer,
    /// title) pair they commit: the pair's resume point in this process's cache must
    /// not outlive the commit ([`Self::apply_local`]).
    pub fn watch_announcer(&self) -> crate::history::Announce {
        let changes = self.clone();
        Arc::new(move |user_id: &str, content_id: &str| {
            changes.apply_local(&Change::Watch {
                user_id: user_id.to_string(),
                content_id: content_id.to_string(),
            })
        })
    }

    /// A receiver of every change announced from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

/// Starts the tasks that keep `cache` current and returns the channel to publish on.
/// The tasks stop when `stop` is cancelled.
pub fn start(cache: Arc<HotCache>, db: &Db, stop: CancellationToken) -> Changes {
    // Room for a burst of NOTIFYs from a large history commit on PostgreSQL.
    let (tx, mut rx) = broadcast::channel(16 * 1024);
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
    match db.backend() {
        Backend::Postgres => {
            if let Some(url) = db.url() {
                tokio::spawn(listen_postgres(url.to_string(), tx, stop));
            }
        }
        // An in-memory database has no other connection to follow.
        Backend::Sqlite if db.is_sqlite_file() => {
            tokio::spawn(follow_sqlite(db.clone(), tx, stop));
        }
        Backend::Sqlite => {}
    }
    changes
}

/// How often the SQLite follower asks whether another connection committed.
pub const SQLITE_POLL: Duration = Duration::from_millis(200);
/// How long `change_log` rows are kept (a follower further behind drops its cache).
const LOG_KEEP_MS: i64 = 60_000;
/// More unread rows than this: drop the cache rather than read them.
const LOG_READ_MAX: i64 = 10_000;

/// Feeds other connections' `change_log` rows into the channel (SQLite).
async fn follow_sqlite(db: Db, tx: broadcast::Sender<Change>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let run = async {
            let mut conn = db.sqlite_connection().await?;
            let mut version = data_version(&mut conn).await?;
            let mut last = log_head(&mut conn).await?;
            // Anything may have changed while nobody followed.
            let _ = tx.send(Change::All);
            let mut trimmed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(SQLITE_POLL).await;
                let v = data_version(&mut conn).await?;
                if v != version {
                    version = v;
                    last = read_log(&mut conn, last, &tx).await?;
                }
                if trimmed.elapsed() >= Duration::from_secs(10) {
                    trimmed = tokio::time::Instant::now();
                    let pool = db.pool().clone();
                    // Off this loop: the delete may wait for the write lock.
                    tokio::spawn(async move {
                        let r = sqlx::query("DELETE FROM change_log WHERE at < $1")
                            .bind(crate::db::now_ms() - LOG_KEEP_MS)
                            .execute(&pool)
                            .await;
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "trimming the change log failed");
                        }
                    });
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), DbError>(())
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            r = run => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "change log: follower failed; retrying");
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

/// SQLite's count that moves when another connection commits.
async fn data_version(conn: &mut sqlx::AnyConnection) -> Result<i64, DbError> {
    let row = sqlx::query("PRAGMA data_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(crate::db::map_err)?;
    row.try_get::<i64, _>(0).map_err(crate::db::map_err)
}

/// The newest `change_log` row ever written (trimmed or not), 0 before the first.
async fn log_head(conn: &mut sqlx::AnyConnection) -> Result<i64, DbError> {
    let row = sqlx::query("SELECT seq FROM sqlite_sequence WHERE name = 'change_log'")
        .fetch_optional(&mut *conn)
        .await
        .map_err(crate::db::map_err)?;
    match row {
        Some(r) => r.try_get::<i64, _>(0).map_err(crate::db::map_err),
        None => Ok(0),
    }
}

/// Sends the changes logged after row `last` and returns the newest row read. Rows
/// are numbered without gaps (SQLite commits one writer at a time and a rollback
/// takes its numbers back), so a gap means rows were trimmed unread: drop everything.
async fn read_log(
    conn: &mut sqlx::AnyConnection,
    last: i64,
    tx: &broadcast::Sender<Change>,
) -> Result<i64, DbError> {
    let head = log_head(conn).await?;
    if head <= last {
        return Ok(last);
    }
    if head - last > LOG_READ_MAX {
        let _ = tx.send(Change::All);
        return Ok(head);
    }
    let rows = sqlx::query(
        "SELECT seq, kind, id FROM change_log WHERE seq > $1 AND seq <= $2 ORDER BY seq",
    )
    .bind(last)
    .bind(head)
    .fetch_all(&mut *conn)
    .await
    .map_err(crate::db::map_err)?;
    let first = rows
        .first()
        .map(|r| r.try_get::<i64, _>(0))
        .transpose()
        .map_err(crate::db::map_err)?;
    if first != Some(last + 1) {
        tracing::warn!(
            after = last,
            "change log rows were trimmed unread; dropping the cache"
        );
        let _ = tx.send(Change::All);
        return Ok(head);
    }
    for r in rows {
        let kind: String = r.try_get(1).map_err(crate::db::map_err)?;
        let id: String = r.try_get(2).map_err(crate::db::map_err)?;
        if let Some(change) = Change::from_parts(&kind, &id) {
            let _ = tx.send(change);
        }
    }
    Ok(head)
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
        assert_eq!(
            Change::from_payload("watch:u1:c-2"),
            Some(Change::Watch {
                user_id: "u1".into(),
                content_id: "c-2".into()
            })
        );
        assert_eq!(Change::from_payload("watch:u1"), None);
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
