//! The metadata database: one connection pool over SQLite (embedded, the default) or
//! PostgreSQL (production), migrations for both, and the one place where database
//! errors become domain errors.
//!
//! Queries are runtime-checked and written once for both databases (sqlx's `Any`
//! driver, `$N` placeholders, times as Unix milliseconds, ids as text); where the
//! dialects differ the code asks [`Db::backend`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

pub mod batch;
pub mod schema;

/// Which database a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool of connections to the metadata database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The URL connected to, for connections outside the pool (PostgreSQL's LISTEN).
    url: ConnectUrl,
}

/// A connection URL, kept out of `Debug` output because it may hold a password.
#[derive(Clone)]
struct ConnectUrl(std::sync::Arc<str>);

impl std::fmt::Debug for ConnectUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Database errors as the rest of Keyframe sees them.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("already exists ({0})")]
    AlreadyExists(String),
    #[error("not found")]
    NotFound,
    #[error("a referenced row does not exist ({0})")]
    MissingReference(String),
    #[error("database URL '{0}' is not supported (expected sqlite://PATH or postgres://…)")]
    Scheme(String),
    #[error("database is unavailable: {0}")]
    Unavailable(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Other(String),
}

/// Maps a sqlx error to a domain error. The one place that knows driver codes.
pub fn map_err(e: sqlx::Error) -> DbError {
    match e {
        sqlx::Error::RowNotFound => DbError::NotFound,
        sqlx::Error::Database(d) => {
            let what = d
                .constraint()
                .map(str::to_string)
                .unwrap_or_else(|| d.message().to_string());
            if d.is_unique_violation() {
                DbError::AlreadyExists(what)
            } else if d.is_foreign_key_violation() {
                DbError::MissingReference(what)
            } else {
                DbError::Other(d.message().to_string())
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            DbError::Unavailable("no connection available".into())
        }
        sqlx::Error::Io(e) => DbError::Unavailable(e.to_string()),
        sqlx::Error::Tls(e) => DbError::Unavailable(e.to_string()),
        sqlx::Error::Configuration(e) => DbError::Unavailable(e.to_string()),
        other => DbError::Other(other.to_string()),
    }
}

impl Db {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`).
    /// A SQLite file is created when missing (its directory must exist); WAL is on.
    /// One connection is made at once, so that an unreachable database says why
    /// (a refused connection, a wrong password) rather than only that the pool
    /// timed out.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or(rest);
            if path.is_empty() {
                return Err(DbError::Scheme(url.to_string()));
            }
            if path != ":memory:" {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() && !dir.is_dir() {
                        return Err(DbError::Unavailable(format!(
                            "directory '{}' does not exist",
                            dir.display()
                        )));
                    }
                }
            }
            let sep = if rest.contains('?') { '&' } else { '?' };
            let mode = if rest.contains("mode=") {
                String::new()
            } else {
                format!("{sep}mode=rwc")
            };
            (Backend::Sqlite, format!("sqlite://{rest}{mode}"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(DbError::Scheme(url.to_string()));
        };
        let memory = url.contains(":memory:");
        let connect_url = ConnectUrl(url.as_str().into());
        let opts = AnyConnectOptions::from_str(&url)
            .map_err(|e| DbError::Unavailable(e.to_string()))?
            .disable_statement_logging();
        if !memory {
            let first = tokio::time::timeout(Duration::from_secs(10), opts.connect())
                .await
                .map_err(|_| DbError::Unavailable("no answer within 10 s".into()))?
                .map_err(|e| DbError::Unavailable(keyframe_core::error_chain(&e)))?;
            let _ = first.close().await;
        }
        let pool = AnyPoolOptions::new()
            // An in-memory SQLite database lives and dies with its one connection.
            .max_connections(if memory { 1 } else { 8 })
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if memory {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| match map_err(e) {
                DbError::Other(m) => DbError::Unavailable(m),
                e => e,
            })?;
        Ok(Db {
            pool,
            backend,
            url: connect_url,
        })
    }

    /// Applies the migrations this build knows that the database lacks.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| DbError::Migrate(e.to_string()))
    }

    /// The database this pool talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The PostgreSQL URL this pool connects to, for connections of their own
    /// (`LISTEN`); `None` on SQLite.
    pub fn url(&self) -> Option<&str> {
        (self.backend == Backend::Postgres).then_some(&*self.url.0)
    }

    /// Whether this is a SQLite database in a file (which other processes may write).
    pub fn is_sqlite_file(&self) -> bool {
        self.backend == Backend::Sqlite && !self.url.0.contains(":memory:")
    }

    /// A connection of its own, outside the pool (the SQLite change follower,
    /// whose `PRAGMA data_version` counts other connections' commits).
    pub async fn sqlite_connection(&self) -> Result<sqlx::AnyConnection, DbError> {
        let opts = AnyConnectOptions::from_str(&self.url.0)
            .map_err(|e| DbError::Unavailable(e.to_string()))?
            .disable_statement_logging();
        let mut conn = opts.connect().await.map_err(map_err)?;
        conn.execute("PRAGMA busy_timeout = 5000;")
            .await
            .map_err(map_err)?;
        Ok(conn)
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
