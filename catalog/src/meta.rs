//! The metadata model: content with its assets, categories and rights; users and
//! their sessions. Each write that belongs together happens in one transaction.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use crate::db::{map_err, now_ms, Db, DbError};

/// One stored object that belongs to a title or a user: the source file, a poster,
/// an image variant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Asset {
    pub id: String,
    /// `source`, `poster`, `variant-48`, `avatar`, …
    pub role: String,
    pub object_key: String,
    pub size: i64,
    pub sha256: String,
    pub mime: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_ms: Option<i64>,
    pub bitrate: Option<i64>,
    pub container: Option<String>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub faststart: Option<bool>,
    /// A tiny inline thumbnail as a `data:` URL.
    pub inline_thumbnail: Option<String>,
}

/// Where and when a title may be watched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Right {
    /// A region name, or `*` for every region.
    pub region: String,
    /// Unix milliseconds; none means "since always".
    pub available_from: Option<i64>,
    /// Unix milliseconds; none means "forever".
    pub available_until: Option<i64>,
}

impl Right {
    /// Whether this right allows watching at `now_ms`.
    pub fn open_at(&self, now_ms: i64) -> bool {
        self.available_from.is_none_or(|f| f <= now_ms)
            && self.available_until.is_none_or(|u| now_ms < u)
    }
}

/// A title to create, with everything that is committed with it.
#[derive(Clone, Debug, Default)]
pub struct NewContent {
    pub title: String,
    pub description: String,
    /// `video`, `audio`, `image`, `other`.
    pub kind: String,
    pub categories: Vec<String>,
    pub assets: Vec<Asset>,
    pub rights: Vec<Right>,
    /// The adaptive-streaming ladder's renditions (their assets are in `assets`).
    pub renditions: Vec<crate::ladder::RenditionRow>,
}

/// A title as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub id: String,
    pub title: String,
    pub description: String,
    pub kind: String,
    pub categories: Vec<String>,
    pub assets: Vec<Asset>,
    pub rights: Vec<Right>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Content {
    /// The object keys of a title's HLS multivariant playlist and DASH MPD, when it has
    /// a ladder.
    pub fn ladder_manifests(&self) -> Option<(&str, &str)> {
        let key = |role: &str| {
            self.assets
                .iter()
                .find(|a| a.role == role)
                .map(|a| a.object_key.as_str())
        };
        Some((key("hls")?, key("dash")?))
    }

    /// The object keys a player of the title may fetch: its source and every object
    /// of its ladder (the `acl` of its playback token).
    pub fn playable_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .assets
            .iter()
            .filter(|a| {
                a.role == "source" || crate::ladder::LADDER_ROLES.contains(&a.role.as_str())
            })
            .map(|a| a.object_key.as_str())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// A user as stored (the password hash stays inside the catalog).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    #[serde(skip)]
    pub password_hash: String,
    pub date_of_birth: Option<String>,
    pub display_name: Option<String>,
    pub created_at: i64,
    /// When the account was disabled (it cannot sign in); `None` while enabled.
    #[serde(default)]
    pub disabled_at: Option<i64>,
}

/// A signed-in session, found by the hash of its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    pub expires_at: i64,
}

/// The region name in a right that stands for every region (named with the schema).
pub use crate::db::schema::ANY_REGION;

/// Changes to a title's metadata; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ContentPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub categories: Option<Vec<String>>,
}

/// Changes to a user's profile; `None` leaves a field as it is, `Some(None)` clears
/// an optional one.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub display_name: Option<Option<String>>,
    pub date_of_birth: Option<Option<String>>,
}

/// A new random identifier.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

const USER_COLUMNS: &str =
    "id, username, email, password_hash, date_of_birth, display_name, created_at, disabled_at";

fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        email: r.try_get("email")?,
        password_hash: r.try_get("password_hash")?,
        date_of_birth: r.try_get("date_of_birth")?,
        display_name: r.try_get("display_name")?,
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
    })
}

/// The token hashes of a user's sessions but `except` (a token hash), inside a
/// transaction. No token hash is empty, so `""` excepts none.
async fn session_hashes(
    tx: &mut sqlx::AnyConnection,
    user_id: &str,
    except: &str,
) -> Result<Vec<String>, DbError> {
    sqlx::query("SELECT token_hash FROM sessions WHERE user_id = $1 AND token_hash <> $2")
        .bind(user_id)
        .bind(except)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(map_err)
}

/// A title's categories, sorted and each once, inside a transaction.
async fn insert_categories(
    tx: &mut sqlx::AnyConnection,
    content_id: &str,
    categories: &[String],
) -> Result<(), sqlx::Error> {
    let mut categories = categories.to_vec();
    categories.sort();
    categories.dedup();
    for c in &categories {
        sqlx::query("INSERT INTO content_categories (content_id, category) VALUES ($1, $2)")
            .bind(content_id)
            .bind(c)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A title's rights, inside a transaction.
async fn insert_rights(
    tx: &mut sqlx::AnyConnection,
    content_id: &str,
    rights: &[Right],
) -> Result<(), sqlx::Error> {
    for r in rights {
        sqlx::query(
            "INSERT INTO rights (content_id, region, available_from, available_until) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(content_id)
        .bind(&r.region)
        .bind(r.available_from)
        .bind(r.available_until)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

const ASSET_COLUMNS: &str =
    "id, role, object_key, size, sha256, mime, width, height, duration_ms, \
     bitrate, container, video_codec, audio_codec, faststart, inline_thumbnail";

fn asset_from_row(r: &sqlx::any::AnyRow) -> Result<Asset, sqlx::Error> {
    Ok(Asset {
        id: r.try_get("id")?,
        role: r.try_get("role")?,
        object_key: r.try_get("object_key")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        mime: r.try_get("mime")?,
        width: r.try_get("width")?,
        height: r.try_get("height")?,
        duration_ms: r.try_get("duration_ms")?,
        bitrate: r.try_get("bitrate")?,
        container: r.try_get("container")?,
        video_codec: r.try_get("video_codec")?,
        audio_codec: r.try_get("audio_codec")?,
        faststart: r.try_get::<Option<i64>, _>("faststart")?.map(|v| v != 0),
        inline_thumbnail: r.try_get("inline_thumbnail")?,
    })
}

async fn insert_asset(
    tx: &mut sqlx::AnyConnection,
    content_id: Option<&str>,
    user_id: Option<&str>,
    a: &Asset,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO assets (content_id, user_id, created_at, {ASSET_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    )))
    .bind(content_id)
    .bind(user_id)
    .bind(now)
    .bind(if a.id.is_empty() {
        new_id()
    } else {
        a.id.clone()
    })
    .bind(&a.role)
    .bind(&a.object_key)
    .bind(a.size)
    .bind(&a.sha256)
    .bind(&a.mime)
    .bind(a.width)
    .bind(a.height)
    .bind(a.duration_ms)
    .bind(a.bitrate)
    .bind(&a.container)
    .bind(&a.video_codec)
    .bind(&a.audio_codec)
    .bind(a.faststart.map(i64::from))
    .bind(&a.inline_thumbnail)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

impl Db {
    /// Creates a title with its categories, assets and rights in one transaction:
    /// either all of it becomes visible or none of it does.
    pub async fn create_content(&self, new: &NewContent) -> Result<Content, DbError> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO content (id, title, description, kind, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(&new.title)
        .bind(&new.description)
        .bind(&new.kind)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_categories(&mut tx, &id, &new.categories)
            .await
            .map_err(map_err)?;
        for a in &new.assets {
            insert_asset(&mut tx, Some(&id), None, a, now)
                .await
                .map_err(map_err)?;
        }
        insert_rights(&mut tx, &id, &new.rights)
            .await
            .map_err(map_err)?;
        crate::ladder::insert(&mut tx, &id, &new.renditions)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        self.content(&id).await
    }

    /// A title with its categories, assets and rights.
    pub async fn content(&self, id: &str) -> Result<Content, DbError> {
        let row = sqlx::query(
            "SELECT id, title, description, kind, created_at, updated_at FROM content WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(map_err)?
        .ok_or(DbError::NotFound)?;
        let categories = sqlx::query(
            "SELECT category FROM content_categories WHERE content_id = $1 ORDER BY category",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(map_err)?;
        let assets = self.assets_by("content_id", id).await?;
        let rights = sqlx::query(
            "SELECT region, available_from, available_until FROM rights \
             WHERE content_id = $1 ORDER BY region",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok(Right {
                region: r.try_get("region")?,
                available_from: r.try_get("available_from")?,
                available_until: r.try_get("available_until")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(map_err)?;
        Ok(Content {
            id: row.try_get("id").map_err(map_err)?,
            title: row.try_get("title").map_err(map_err)?,
            description: row.try_get("description").map_err(map_err)?,
            kind: row.try_get("kind").map_err(map_err)?,
            categories,
            assets,
            rights,
            created_at: row.try_get("created_at").map_err(map_err)?,
            updated_at: row.try_get("updated_at").map_err(map_err)?,
        })
    }

    /// Whether any metadata row references `object_key`.
    pub async fn object_referenced(&self, object_key: &str) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT COUNT(*) FROM assets WHERE object_key = $1")
            .bind(object_key)
            .fetch_one(self.pool())
            .await
            .map_err(map_err)?;
        Ok(row.try_get::<i64, _>(0).map_err(map_err)? > 0)
    }

    /// Creates a user; a taken username is [`DbError::AlreadyExists`].
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password_hash: &str,
        date_of_birth: Option<&str>,
    ) -> Result<User, DbError> {
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, date_of_birth, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(username)
        .bind(email)
        .bind(password_hash)
        .bind(date_of_birth)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(map_err)?;
        self.user_by("id", &id).await
    }

    /// A user by name.
    pub async fn user_by_username(&self, username: &str) -> Result<User, DbError> {
        self.user_by("username", username).await
    }

    /// A user by id.
    pub async fn user_by_id(&self, id: &str) -> Result<User, DbError> {
        self.user_by("id", id).await
    }

    async fn user_by(&self, column: &'static str, value: &str) -> Result<User, DbError> {
        let r = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {column} = $1"
        )))
        .bind(value)
        .fetch_optional(self.pool())
        .await
        .map_err(map_err)?
        .ok_or(DbError::NotFound)?;
        user_from_row(&r).map_err(map_err)
    }

    /// Every user, by username.
    pub async fn list_users(&self) -> Result<Vec<User>, DbError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        )))
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(user_from_row)
        .collect::<Result<_, _>>()
        .map_err(map_err)
    }

    /// Disables (no sign-in; every session ended) or enables an account, in one
    /// transaction. Returns the token hashes of the sessions that were ended.
    pub async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
    ) -> Result<Vec<String>, DbError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE users SET disabled_at = CASE WHEN $2 = 1 THEN COALESCE(disabled_at, $3) \
             ELSE NULL END, updated_at = $3 WHERE id = $1",
        )
        .bind(user_id)
        .bind(i64::from(disabled))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        let mut ended = Vec::new();
        if disabled {
            ended = session_hashes(&mut tx, user_id, "").await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(ended)
    }

    /// Deletes an account and everything that is the viewer's, in one transaction:
    /// the watch history and what was derived from it (counters, trending weight,
    /// personal recommendations; see [`Db::delete_history`]), the sessions, the
    /// avatar's asset rows (its objects become unreferenced, for `keyframe gc`) and
    /// the user. Returns the token hashes of the sessions that were ended.
    pub async fn delete_user(
        &self,
        user_id: &str,
        th: crate::history::fold::Thresholds,
        half_life_ms: i64,
    ) -> Result<Vec<String>, DbError> {
        let mut tx = crate::db::batch::begin_write(self).await.map_err(map_err)?;
        let exists = sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Err(DbError::NotFound);
        }
        self.delete_history_in(
            &mut tx,
            user_id,
            &crate::history::DeleteScope::All,
            th,
            half_life_ms,
        )
        .await?;
        let ended = session_hashes(&mut tx, user_id, "").await?;
        for sql in [
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM assets WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(ended)
    }

    /// The titles whose source is the object at `object_key` (a file ingested
    /// before), oldest first.
    pub async fn titles_with_source(&self, object_key: &str) -> Result<Vec<String>, DbError> {
        sqlx::query(
            "SELECT a.content_id FROM assets a JOIN content c ON c.id = a.content_id \
             WHERE a.object_key = $1 AND a.role = 'source' ORDER BY c.created_at, c.id",
        )
        .bind(object_key)
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(map_err)
    }

    /// Stores a session under the hash of its token.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now_ms())
        .bind(expires_at)
        .execute(self.pool())
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// The session with this token hash, if it exists (expired or not).
    pub async fn session(&self, token_hash: &str) -> Result<Session, DbError> {
        let r = sqlx::query("SELECT user_id, expires_at FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await
            .map_err(map_err)?
            .ok_or(DbError::NotFound)?;
        Ok(Session {
            user_id: r.try_get("user_id").map_err(map_err)?,
            expires_at: r.try_get("expires_at").map_err(map_err)?,
        })
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool())
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

impl Db {
    /// Applies `patch` to a title and bumps its `updated_at`, in one transaction.
    pub async fn update_content(&self, id: &str, patch: &ContentPatch) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE content SET title = COALESCE($2, title), \
             description = COALESCE($3, description), kind = COALESCE($4, kind), \
             updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(patch.title.as_deref())
        .bind(patch.description.as_deref())
        .bind(patch.kind.as_deref())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        if let Some(categories) = &patch.categories {
            sqlx::query("DELETE FROM content_categories WHERE content_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            insert_categories(&mut tx, id, categories)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    /// Replaces a title's rights and bumps its `updated_at`, in one transaction.
    pub async fn replace_rights(&self, id: &str, rights: &[Right]) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        let done = sqlx::query("UPDATE content SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        sqlx::query("DELETE FROM rights WHERE content_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_rights(&mut tx, id, rights).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    /// Counts one more view of a title: the placeholder popularity signal behind the
    /// "trending" sort until watch history provides a real one.
    pub async fn add_view(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE content SET views = views + 1 WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Applies `patch` to a user's profile and returns the user as stored.
    pub async fn update_user(&self, id: &str, patch: &UserPatch) -> Result<User, DbError> {
        let done = sqlx::query(
            "UPDATE users SET email = COALESCE($2, email), \
             display_name = CASE WHEN $3 = 1 THEN $4 ELSE display_name END, \
             date_of_birth = CASE WHEN $5 = 1 THEN $6 ELSE date_of_birth END, \
             updated_at = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(patch.email.as_deref())
        .bind(i64::from(patch.display_name.is_some()))
        .bind(patch.display_name.clone().flatten())
        .bind(i64::from(patch.date_of_birth.is_some()))
        .bind(patch.date_of_birth.clone().flatten())
        .bind(now_ms())
        .execute(self.pool())
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        self.user_by_id(id).await
    }

    /// Replaces a user's password hash (a new password, or a rehash at login).
    pub async fn set_password_hash(&self, id: &str, password_hash: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(password_hash)
            .bind(now_ms())
            .execute(self.pool())
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Ends a user's sessions, all but `except` (a token hash) when given, and
    /// returns the token hashes that were ended.
    pub async fn delete_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
    ) -> Result<Vec<String>, DbError> {
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        let hashes = session_hashes(&mut tx, user_id, except.unwrap_or("")).await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(except.unwrap_or(""))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(hashes)
    }

    /// Removes a user's sessions that expired before `now_ms`.
    pub async fn delete_expired_sessions(&self, user_id: &str, now_ms: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_at <= $2")
            .bind(user_id)
            .bind(now_ms)
            .execute(self.pool())
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// The assets that belong to a user (avatar and its variants).
    pub async fn user_assets(&self, user_id: &str) -> Result<Vec<Asset>, DbError> {
        self.assets_by("user_id", user_id).await
    }

    /// The assets whose `column` (`content_id` or `user_id`) is `owner`.
    async fn assets_by(&self, column: &'static str, owner: &str) -> Result<Vec<Asset>, DbError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE {column} = $1 ORDER BY role, id"
        )))
        .bind(owner)
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(asset_from_row)
        .collect::<Result<_, _>>()
        .map_err(map_err)
    }

    /// Replaces a user's assets (a new avatar with its variants) in one transaction.
    /// The objects must already be completely stored.
    pub async fn replace_user_assets(
        &self,
        user_id: &str,
        assets: &[Asset],
    ) -> Result<(), DbError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        sqlx::query("DELETE FROM assets WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        for a in assets {
            insert_asset(&mut tx, None, Some(user_id), a, now)
                .await
                .map_err(map_err)?;
        }
        sqlx::query("UPDATE users SET updated_at = $2 WHERE id = $1")
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
}

impl Db {
    /// The ladder of `c` as the content API lists it (video rungs tallest first,
    /// then audio); empty, with no query, for a title without a ladder.
    pub async fn rendition_views(
        &self,
        c: &Content,
    ) -> Result<Vec<crate::ladder::RenditionView>, DbError> {
        if c.ladder_manifests().is_none() {
            return Ok(Vec::new());
        }
        let rows = self.renditions(&c.id).await?;
        Ok(views_of(c, rows))
    }
}

/// Rendition rows joined with their assets (for the picture size).
fn views_of(
    c: &Content,
    rows: Vec<crate::ladder::RenditionRow>,
) -> Vec<crate::ladder::RenditionView> {
    let mut out: Vec<crate::ladder::RenditionView> = rows
        .into_iter()
        .map(|r| {
            let asset = c.assets.iter().find(|a| a.id == r.asset_id);
            let video = r.kind == "video";
            crate::ladder::RenditionView {
                width: asset.and_then(|a| a.width).filter(|_| video),
                height: asset.and_then(|a| a.height).filter(|_| video),
                kind: r.kind,
                bandwidth: r.bandwidth,
                average_bandwidth: r.average_bandwidth,
                codecs: r.codecs,
                segments: r.segments,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (b.kind == "video", b.height, b.bandwidth).cmp(&(a.kind == "video", a.height, a.bandwidth))
    });
    out
}
