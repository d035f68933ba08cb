//! `keyframe user`: accounts from the command line, through the catalog's own
//! account code (its checks, argon2id hashing with the configured parameters, and
//! the transactions the API uses). Passwords are read from standard input, never
//! from a flag or the environment (both are visible to other users of the
//! machine), and never echoed.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use figment::Figment;
use keyframe_catalog::auth::{Passwords, MAX_PASSWORD_BYTES};
use keyframe_catalog::{Db, DbError};
use serde_json::json;

use crate::cli::{ConfigError, DbFlags, Shared};
use crate::Failure;

/// Arguments of `keyframe user`.
#[derive(Debug, Args)]
pub struct UserCmd {
    #[command(subcommand)]
    pub action: UserAction,
    #[command(flatten)]
    pub storage: DbFlags,
}

/// What `keyframe user` does.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account; the password is read from standard input.
    Add {
        /// 3–32 characters of a-z 0-9 _ . -
        username: String,
        /// The account's email address.
        #[arg(long)]
        email: String,
        /// YYYY-MM-DD [default: none].
        #[arg(long, value_name = "DATE")]
        date_of_birth: Option<String>,
        #[command(flatten)]
        password: PasswordFlag,
    },
    /// List the accounts.
    List {
        /// One JSON object per account.
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (read from standard input) and end the user's sessions.
    Passwd {
        username: String,
        #[command(flatten)]
        password: PasswordFlag,
    },
    /// Disable an account: it cannot sign in, and its sessions end.
    Disable { username: String },
    /// Enable a disabled account again.
    Enable { username: String },
    /// Delete an account with its sessions, avatar and watch history (its avatar's
    /// objects are left for `keyframe gc`).
    Delete { username: String },
}

/// Where the password comes from.
#[derive(Debug, Args)]
pub struct PasswordFlag {
    /// Read the password from the first line of standard input (required: for
    /// scripts, `printf '%s\n' "$PW" | keyframe user add …`).
    #[arg(long)]
    pub password_stdin: bool,
}

/// How `keyframe user` failed.
pub enum UserError {
    /// A usage mistake: exit 2.
    Usage(String),
    /// The database or the hashing failed: exit 1.
    Runtime(String),
}

impl From<DbError> for UserError {
    fn from(e: DbError) -> Self {
        UserError::Runtime(format!("database: {e}"))
    }
}

/// `keyframe user …`: a usage mistake exits 2, a failed database or hash 1.
pub async fn run(
    shared: &Shared,
    layers: &Figment,
    action: &UserAction,
) -> Result<ExitCode, Failure> {
    let config: keyframe_catalog::Config = layers.extract()?;
    super::check_catalog(&config)?;
    let db = super::open_db(shared).await?;
    let done = apply(action, &db, &config).await;
    db.close().await;
    match done {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(UserError::Usage(m)) => Err(Failure::Config(ConfigError(m))),
        Err(UserError::Runtime(m)) => Err(Failure::Runtime(anyhow::anyhow!(m))),
    }
}

/// Runs `keyframe user …` against `db`, hashing with `config`'s argon2 parameters.
async fn apply(
    action: &UserAction,
    db: &Db,
    config: &keyframe_catalog::Config,
) -> Result<(), UserError> {
    let mut out = std::io::stdout().lock();
    let say = |out: &mut std::io::StdoutLock<'_>, line: String| {
        writeln!(out, "{line}").map_err(|e| UserError::Runtime(format!("stdout: {e}")))
    };
    match action {
        UserAction::Add {
            username,
            email,
            date_of_birth,
            password,
        } => {
            let api = |e: keyframe_catalog::api::error::ApiError| UserError::Usage(e.message);
            use keyframe_catalog::api::accounts as checks;
            checks::check_username(username).map_err(api)?;
            checks::check_email(email).map_err(api)?;
            if let Some(d) = date_of_birth {
                checks::check_date_of_birth(d, keyframe_catalog::db::now_ms()).map_err(api)?;
            }
            let pw = read_password(password)?;
            checks::check_password("password", &pw).map_err(api)?;
            let hash = hasher(config)?
                .hash(pw)
                .await
                .map_err(|e| UserError::Runtime(format!("hashing the password: {e}")))?;
            let user = match db
                .create_user(username, email, &hash, date_of_birth.as_deref())
                .await
            {
                Ok(u) => u,
                Err(DbError::AlreadyExists(_)) => {
                    return Err(UserError::Usage(format!(
                        "a user named '{username}' already exists"
                    )))
                }
                Err(e) => return Err(e.into()),
            };
            say(
                &mut out,
                format!("added user {} ({})", user.username, user.id),
            )
        }
        UserAction::List { json } => {
            for u in db.list_users().await? {
                let line = if *json {
                    json!({
                        "id": u.id,
                        "username": u.username,
                        "email": u.email,
                        "display_name": u.display_name,
                        "date_of_birth": u.date_of_birth,
                        "created_at": u.created_at,
                        "disabled_at": u.disabled_at,
                    })
                    .to_string()
                } else {
                    format!(
                        "{}\t{}\t{}\t{}",
                        u.username,
                        u.id,
                        u.email,
                        if u.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        }
                    )
                };
                say(&mut out, line)?;
            }
            Ok(())
        }
        UserAction::Passwd { username, password } => {
            let user = find(db, username).await?;
            let pw = read_password(password)?;
            keyframe_catalog::api::accounts::check_password("password", &pw)
                .map_err(|e| UserError::Usage(e.message))?;
            let hash = hasher(config)?
                .hash(pw)
                .await
                .map_err(|e| UserError::Runtime(format!("hashing the password: {e}")))?;
            db.set_password_hash(&user.id, &hash).await?;
            let ended = db.delete_user_sessions(&user.id, None).await?;
            say(
                &mut out,
                format!(
                    "new password for {}; {} session(s) ended",
                    user.username,
                    ended.len()
                ),
            )
        }
        UserAction::Disable { username } | UserAction::Enable { username } => {
            let disable = matches!(action, UserAction::Disable { .. });
            let user = find(db, username).await?;
            let ended = db.set_user_disabled(&user.id, disable).await?;
            say(
                &mut out,
                if disable {
                    format!(
                        "disabled {}; {} session(s) ended",
                        user.username,
                        ended.len()
                    )
                } else {
                    format!("enabled {}", user.username)
                },
            )
        }
        UserAction::Delete { username } => {
            let user = find(db, username).await?;
            let ended = db
                .delete_user(
                    &user.id,
                    config.history_thresholds(),
                    config.trending_half_life_ms(),
                )
                .await?;
            say(
                &mut out,
                format!(
                    "deleted {} with its history, avatar and {} session(s)",
                    user.username,
                    ended.len()
                ),
            )
        }
    }
}

async fn find(db: &Db, username: &str) -> Result<keyframe_catalog::meta::User, UserError> {
    match db.user_by_username(username).await {
        Ok(u) => Ok(u),
        Err(DbError::NotFound) => Err(UserError::Usage(format!("no user named '{username}'"))),
        Err(e) => Err(e.into()),
    }
}

fn hasher(config: &keyframe_catalog::Config) -> Result<Passwords, UserError> {
    let params = config
        .argon2_params()
        .map_err(|e| UserError::Usage(e.to_string()))?;
    Ok(Passwords::new(params))
}

/// The first line of standard input, without its line ending.
fn read_password(flag: &PasswordFlag) -> Result<String, UserError> {
    if !flag.password_stdin {
        return Err(UserError::Usage(
            "give the password on standard input with --password-stdin".into(),
        ));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(UserError::Usage(
            "--password-stdin reads a pipe, not a terminal (it would echo the password)".into(),
        ));
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(u64::try_from(MAX_PASSWORD_BYTES).unwrap_or(u64::MAX) + 2)
        .read_line(&mut line)
        .map_err(|e| UserError::Usage(format!("reading the password from stdin: {e}")))?;
    let pw = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if pw.is_empty() {
        return Err(UserError::Usage(
            "no password on standard input (one line expected)".into(),
        ));
    }
    Ok(pw.to_string())
}
