//! The command line: flags (clap), and the one place where configuration layers
//! are merged.
//!
//! Precedence, for every option: flag > `KEYFRAME_<NAME>` environment > `--config`
//! TOML file > the default documented on the config struct's field. Option names
//! are the same in all layers: `--cache-memory`, `KEYFRAME_CACHE_MEMORY`,
//! `cache_memory = "…"` in the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use keyframe_core::size::ByteSize;
use serde::{Deserialize, Serialize};

/// Keyframe: a media content delivery service.
#[derive(Debug, Parser)]
#[command(name = "keyframe", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub shared: SharedFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// Options before the command: `--config`, `--log`, `--log-format` and `--threads`
/// reach every command; `--data-dir`, `--db` and `--store` here are the defaults
/// of the commands that take them (given after the command, they win).
#[derive(Debug, Args, Serialize)]
pub struct SharedFlags {
    /// A TOML config file (flags and KEYFRAME_* environment override it).
    #[arg(long, global = true, value_name = "FILE", env = "KEYFRAME_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[arg(long, value_name = "DIR", help = format!(
        "Where embedded defaults keep their data {}. Also taken after the commands that keep data",
        default_note(data_dir_shown())
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Metadata database URL (also taken after the commands that use one).
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// Object storage URL (also taken after the commands that use one).
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    #[arg(long, global = true, value_name = "FILTER", help = help(
        "Log filter, e.g. `info`, `warn,keyframe::access=off`", LOG_FILTER
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Worker threads of the async runtime (flag or environment only) [default: one per core;
    /// `origin` and `edge` then serve on one single-threaded runtime per core, each with
    /// its own listener]. Given, one shared runtime of N threads serves. Where a load
    /// generator or other servers share the machine, fewer threads than cores avoids
    /// their fighting over the cores.
    #[arg(long, global = true, value_name = "N", env = "KEYFRAME_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    #[serde(skip)]
    pub threads: Option<u16>,
    #[arg(long, global = true, value_name = "FORMAT",
          help = help("Log format on stderr", LogFormat::default().name()))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// Where a command that uses both keeps metadata and objects.
#[derive(Debug, Default, Args, Serialize)]
pub struct StorageFlags {
    #[arg(long, value_name = "DIR",
          help = help("Where embedded defaults keep their data", data_dir_shown()))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_name = "URL", help = help(
        "Metadata database URL: sqlite://PATH or postgres://…",
        format_args!("sqlite://<data-dir>/{DB_FILE}")
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    #[arg(long, value_name = "URL", help = help(
        "Object storage URL: file://DIR, s3://BUCKET?endpoint=…, memory://",
        format_args!("file://<data-dir>/{OBJECTS_DIR}")
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// Where a command that only reads and writes metadata finds it (`global`: `user`
/// takes them after its own subcommands too).
#[derive(Debug, Default, Args, Serialize)]
pub struct DbFlags {
    #[arg(long, global = true, value_name = "DIR",
          help = help("Where embedded defaults keep their data", data_dir_shown()))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, global = true, value_name = "URL", help = help(
        "Metadata database URL: sqlite://PATH or postgres://…",
        format_args!("sqlite://<data-dir>/{DB_FILE}")
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
}

/// Where a command that only serves objects finds them.
#[derive(Debug, Default, Args, Serialize)]
pub struct StoreFlags {
    #[arg(long, value_name = "DIR",
          help = help("Where embedded defaults keep their data", data_dir_shown()))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_name = "URL", help = help(
        "Object storage URL: file://DIR, s3://BUCKET?endpoint=…, memory://",
        format_args!("file://<data-dir>/{OBJECTS_DIR}")
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// `keyframe ingest`: the ingest crate's flags and where to store.
#[derive(Debug, Args)]
pub struct IngestCmd {
    #[command(flatten)]
    pub storage: StorageFlags,
    #[command(flatten)]
    pub args: keyframe_ingest::IngestArgs,
}

/// `keyframe gc`: the ingest crate's flags and where to look.
#[derive(Debug, Args)]
pub struct GcCmd {
    #[command(flatten)]
    pub storage: StorageFlags,
    #[command(flatten)]
    pub args: keyframe_ingest::GcArgs,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// Its name on the command line.
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One node with everything on embedded defaults: catalog and web page on :8080,
    /// edge on :8081, origin on :8082, data under ./data.
    Serve(ServeFlags),
    /// An origin server: object bytes as HTTP byte ranges.
    Origin(OriginFlags),
    /// An edge cache in front of origins or any HTTP server.
    Edge(EdgeFlags),
    /// The catalog API and web page.
    Catalog(CatalogFlags),
    /// Ingest content files, or a profile image with --avatar.
    Ingest(IngestCmd),
    /// Find (and with --delete remove) stored objects no metadata refers to.
    Gc(GcCmd),
    /// Apply database migrations.
    Migrate(DbFlags),
    /// Manage accounts: add, list, passwd, disable, enable, delete.
    User(crate::commands::user::UserCmd),
    /// Run the recommendation batch once.
    Recommend(RecommendFlags),
    /// Load and player benchmarks against any HTTP URL, the RFC 9111
    /// conformance suite for any caching proxy, and synthetic watch history.
    Bench(BenchCmd),
    /// Apache Ballista processes for `recommend --engine ballista://…`: a scheduler
    /// or an executor.
    Ballista(crate::commands::ballista::BallistaCmd),
    /// Check a running server's health (for container health checks): exit 0 if
    /// it answers 2xx, else one line and exit 1.
    Healthcheck(HealthcheckArgs),
}

/// Arguments of `keyframe healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// A port (`8081`), `HOST:PORT`, or a whole URL; the first two mean
    /// `http://HOST:PORT/_keyframe/healthz`, host 127.0.0.1 by default.
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// Seconds to wait for the whole answer.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub timeout: f64,
    /// Also trust the certificates in this PEM file (for https:// targets).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Flags of `keyframe serve`.
#[derive(Debug, Args, Serialize)]
pub struct ServeFlags {
    #[arg(long, value_name = "ADDR", help = help("Where the catalog listens", catalog().listen))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_listen: Option<SocketAddr>,
    #[arg(long, value_name = "ADDR", help = help("Where the edge listens", edge().listen))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_listen: Option<SocketAddr>,
    #[arg(long, value_name = "ADDR", help = help("Where the origin listens", origin().listen))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_listen: Option<SocketAddr>,
    #[arg(long, value_name = "NAME", help = help(
        "The node's region: its edge's label, and the region of every viewer the catalog \
         cannot place otherwise (`default_region`)",
        NODE_REGION
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub events: EventsFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub keys: KeyFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub cache: CacheFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub cors: CorsFlags,
    /// HTTPS for the edge and the catalog (the origin behind the edge stays on
    /// plain HTTP, on loopback).
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: TlsFlags,
}

/// Cross-origin access to media (origin and edge).
#[derive(Debug, Args, Serialize)]
pub struct CorsFlags {
    /// Origins whose pages may fetch media (CORS), comma-separated: `*` for any,
    /// or origins like `https://app.example.com`; empty for no CORS headers [default: *].
    #[arg(long, value_name = "ORIGIN[,ORIGIN…]")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_allowed_origins: Option<String>,
}

/// Token and admin keys.
#[derive(Debug, Args, Serialize)]
pub struct KeyFlags {
    /// Key that signs and validates playback tokens (hex, at least 16 bytes) [default: none].
    #[arg(long, value_name = "KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_key: Option<String>,
    /// Token that admin endpoints require [default: none].
    #[arg(long, value_name = "TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

/// Edge cache sizing.
#[derive(Debug, Args, Serialize)]
pub struct CacheFlags {
    #[arg(long, value_name = "SIZE",
          help = help("Bound of the in-memory cache, e.g. 256MiB", edge().cache_memory))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_memory: Option<ByteSize>,
    #[arg(long, value_name = "SIZE",
          help = help("Chunk size large objects are cached as", edge().chunk_size))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<ByteSize>,
    /// Directory of the disk cache tier [default: none].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_disk: Option<PathBuf>,
    #[arg(long, value_name = "SIZE",
          help = help("Bound of the disk cache tier", edge().cache_disk_size))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_disk_size: Option<ByteSize>,
}

/// Flags of `keyframe origin`.
#[derive(Debug, Args, Serialize)]
pub struct OriginFlags {
    #[arg(long, value_name = "ADDR", help = help("Where the origin listens", origin().listen))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Key that validates playback tokens (hex) [default: none].
    #[arg(long, value_name = "KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_key: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StoreFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub cors: CorsFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: TlsFlags,
}

/// HTTPS for a server.
#[derive(Debug, Args, Serialize)]
pub struct TlsFlags {
    /// PEM certificate chain: with --tls-key, serve HTTPS only (HTTP/2 and HTTP/1.1
    /// by ALPN) [default: none, plain HTTP and h2c].
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [default: none].
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// Flags of `keyframe edge`.
#[derive(Debug, Args, Serialize)]
pub struct EdgeFlags {
    #[arg(long, value_name = "ADDR", help = help("Where the edge listens", edge().listen))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[arg(long, value_name = "URL[,URL…]",
          help = help("Upstream base URLs, comma-separated", edge().upstream.join(",")))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// This edge's region label, e.g. eu [default: none].
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A shield edge to fetch misses from [default: none].
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// PEM CA certificates trusted for https:// upstreams, besides the system's [default: none].
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ca: Option<PathBuf>,
    #[arg(long, value_name = "N",
          help = help("Chunks fetched ahead of a sequential reader", edge().read_ahead))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_ahead: Option<usize>,
    #[command(flatten)]
    #[serde(flatten)]
    pub cache: CacheFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub cors: CorsFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub keys: KeyFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: TlsFlags,
}

/// Flags of `keyframe catalog`.
#[derive(Debug, Args, Serialize)]
pub struct CatalogFlags {
    #[arg(long, value_name = "ADDR", help = help("Where the catalog listens", catalog().listen))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[arg(long, value_name = "URL",
          help = help("The edge URL playback links point to", catalog().edge_url))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_url: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub events: EventsFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub keys: KeyFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: TlsFlags,
}

/// Where watch events go (`keyframe catalog` and `keyframe serve`).
#[derive(Debug, Args, Serialize)]
pub struct EventsFlags {
    /// Watch events go to this NATS JetStream (comma-separated server URLs) and are
    /// folded by its consumers, instead of the in-process writer [default: none,
    /// the in-process writer].
    #[arg(long, value_name = "nats://HOST:PORT[,…]")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
}

/// Flags of `keyframe recommend`.
#[derive(Debug, Args, Serialize)]
pub struct RecommendFlags {
    #[arg(long = "engine", value_name = "ENGINE", help = help(
        "Where the batch runs: `local` (in this process, streaming, every core), `sql` (as \
         SQL inside the database), `datafusion` (DataFusion in this process, over the \
         Parquet snapshot in the store) or `ballista://HOST:PORT` (the same plan on a \
         Ballista cluster)",
        catalog().recommend_engine
    ))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommend_engine: Option<String>,
    /// First export the folded history as a new Parquet snapshot in the store (the
    /// input of the datafusion and ballista engines, which otherwise read the latest
    /// complete one).
    #[arg(long)]
    #[serde(skip)]
    pub snapshot: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageFlags,
}

/// `keyframe bench …`: the bench crate's commands, and `history-synth`, which needs
/// the catalog (the bench crate depends on keyframe-core only).
#[derive(Debug, Args)]
pub struct BenchCmd {
    #[command(subcommand)]
    pub command: BenchSub,
}

// Parsed once per process: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum BenchSub {
    /// Generate synthetic watch history (zipf titles, zipf viewer activity) and fold
    /// it into a database, as the recommendation benchmarks use.
    HistorySynth(crate::commands::synth::HistorySynthArgs),
    #[command(flatten)]
    Other(keyframe_bench::BenchCommand),
}

/// Where embedded defaults keep their data, relative to the working directory.
pub const DATA_DIR: &str = "data";
/// The SQLite database inside the data directory, the default `db`.
pub const DB_FILE: &str = "keyframe.db";
/// The object directory inside the data directory, the default `store`.
pub const OBJECTS_DIR: &str = "objects";
/// The default log filter.
pub const LOG_FILTER: &str = "info";
/// The region of a `serve` node without `--region`.
pub const NODE_REGION: &str = "local";

// Each default is written once: on the constant above or in a config struct's
// `Default`. The flags cannot carry clap defaults (a flag given always would
// override the environment and the file), so their help shows the value with
// `help(…)`, in the `[default: …]` form clap uses.

/// `text` and its default, as clap shows one: `text [default: value]`.
fn help(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} {}", default_note(default))
}

fn default_note(default: impl std::fmt::Display) -> String {
    format!("[default: {default}]")
}

/// The data directory as the help shows it (`./data`).
fn data_dir_shown() -> String {
    std::path::Path::new(".")
        .join(DATA_DIR)
        .display()
        .to_string()
}

fn origin() -> keyframe_origin::Config {
    keyframe_origin::Config::default()
}

fn edge() -> keyframe_edge::Config {
    keyframe_edge::Config::default()
}

fn catalog() -> keyframe_catalog::Config {
    keyframe_catalog::Config::default()
}

/// Options every command resolves from the layers.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Shared {
    /// Where embedded defaults keep their data. Default [`DATA_DIR`].
    pub data_dir: PathBuf,
    /// Metadata database URL. Default `sqlite://<data_dir>/`[`DB_FILE`].
    pub db: Option<String>,
    /// Object storage URL. Default `file://<data_dir>/`[`OBJECTS_DIR`].
    pub store: Option<String>,
    /// Log filter. Default [`LOG_FILTER`].
    pub log: String,
    /// Log format. Default [`LogFormat::default`].
    pub log_format: LogFormat,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            data_dir: PathBuf::from(DATA_DIR),
            db: None,
            store: None,
            log: LOG_FILTER.into(),
            log_format: LogFormat::default(),
        }
    }
}

impl Shared {
    /// The database URL, defaulted from the data directory.
    pub fn db_url(&self) -> String {
        self.db
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join(DB_FILE).display()))
    }

    /// Creates the directory of a SQLite database when it is the data directory or
    /// inside it; a database elsewhere must be in a directory that exists (a typo
    /// in `--db` should not make a directory tree).
    pub fn make_sqlite_dir(&self) -> Result<(), String> {
        let url = self.db_url();
        let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Ok(());
        };
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || path == ":memory:" {
            return Ok(());
        }
        let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        else {
            return Ok(());
        };
        if dir.is_dir() {
            return Ok(());
        }
        if dir.starts_with(&self.data_dir) {
            return std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create '{}': {e}", dir.display()));
        }
        Err(format!(
            "directory '{}' does not exist (only the data directory, '{}', is created)",
            dir.display(),
            self.data_dir.display()
        ))
    }

    /// The store URL, defaulted from the data directory.
    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.data_dir.join(OBJECTS_DIR).display()))
    }
}

/// Listen addresses of `keyframe serve`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServeAddrs {
    /// Default `127.0.0.1:8080`.
    pub catalog_listen: std::net::SocketAddr,
    /// Default `127.0.0.1:8081`.
    pub edge_listen: std::net::SocketAddr,
    /// Default `127.0.0.1:8082`.
    pub origin_listen: std::net::SocketAddr,
}

impl Default for ServeAddrs {
    fn default() -> Self {
        ServeAddrs {
            catalog_listen: keyframe_catalog::Config::default().listen,
            edge_listen: keyframe_edge::Config::default().listen,
            origin_listen: keyframe_origin::Config::default().listen,
        }
    }
}

/// A configuration error, rendered as one line naming the option.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        let option = e.path.join(".").replace('_', "-");
        let source = e
            .metadata
            .as_ref()
            .map(|m| format!(" (from {})", m.name))
            .unwrap_or_default();
        let what = e.kind.to_string();
        if option.is_empty() {
            ConfigError(format!("configuration{source}: {what}"))
        } else {
            ConfigError(format!(
                "invalid value for option '{option}'{source}: {what}"
            ))
        }
    }
}

impl Cli {
    /// The configuration layers of this command line's command.
    pub fn layers(&self) -> Result<Figment, ConfigError> {
        #[derive(Serialize)]
        struct NoFlags {}
        match &self.command {
            Command::Serve(f) => layers(&self.shared, f),
            Command::Origin(f) => layers(&self.shared, f),
            Command::Edge(f) => layers(&self.shared, f),
            Command::Catalog(f) => layers(&self.shared, f),
            Command::Recommend(f) => layers(&self.shared, f),
            Command::Ingest(c) => layers(&self.shared, &c.storage),
            Command::Gc(c) => layers(&self.shared, &c.storage),
            Command::Migrate(f) => layers(&self.shared, f),
            Command::User(c) => layers(&self.shared, &c.storage),
            Command::Bench(BenchCmd {
                command: BenchSub::HistorySynth(a),
            }) => layers(&self.shared, &a.storage),
            Command::Bench(_) | Command::Healthcheck(_) | Command::Ballista(_) => {
                layers(&self.shared, &NoFlags {})
            }
        }
    }
}

/// A command-line error as one line: clap's first paragraph, whose first line may
/// be only a heading ("the following required arguments were not provided:")
/// with the arguments on the lines below it.
pub fn usage_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
        .map(str::trim)
        .collect();
    if first.is_empty() {
        "error: bad arguments".into()
    } else {
        first.join(" ")
    }
}

/// Every option a config file may set: the keys of every config struct, and the
/// options that have no serialized default.
pub fn known_options() -> std::collections::BTreeSet<String> {
    fn keys<T: Serialize>(v: &T) -> Vec<String> {
        toml::Value::try_from(v)
            .ok()
            .and_then(|t| t.as_table().map(|t| t.keys().cloned().collect()))
            .unwrap_or_default()
    }
    let mut known = std::collections::BTreeSet::new();
    known.extend(keys(&keyframe_origin::Config::default()));
    known.extend(keys(&keyframe_edge::Config::default()));
    known.extend(keys(&keyframe_catalog::Config::default()));
    known.extend(keys(&ServeAddrs::default()));
    known.extend(
        [
            "data_dir",
            "db",
            "store",
            "log",
            "log_format",
            "token_key",
            "admin_token",
            "region",
            "parent",
            "upstream_ca",
            "cache_disk",
            "tls_cert",
            "events",
            "tls_key",
            "region_geoip_db",
        ]
        .map(String::from),
    );
    known
}

/// Refuses a config file that sets an option no command knows (a misspelling
/// would otherwise be ignored silently).
fn check_file_keys(path: &std::path::Path) -> Result<(), ConfigError> {
    let data = Figment::from(Toml::file_exact(path))
        .data()
        .map_err(ConfigError::from)?;
    let known = known_options();
    for dict in data.values() {
        if let Some(key) = dict.keys().find(|k| !known.contains(*k)) {
            let hint = known
                .iter()
                .map(|k| (strsim::levenshtein(k, key), k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| format!(" (did you mean '{k}'?)"))
                .unwrap_or_default();
            return Err(ConfigError(format!(
                "unknown option '{key}' in {}{hint}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The layers, merged: defaults come from each struct's `Default`.
pub fn layers(shared: &SharedFlags, flags: &impl Serialize) -> Result<Figment, ConfigError> {
    let mut f = Figment::new();
    if let Some(path) = &shared.config {
        if !path.is_file() {
            return Err(ConfigError(format!(
                "invalid value for option 'config': '{}' is not a readable file",
                path.display()
            )));
        }
        check_file_keys(path)?;
        f = f.merge(Toml::file_exact(path));
    }
    f = f
        .merge(Env::prefixed("KEYFRAME_").ignore(&["config"]))
        .merge(Serialized::defaults(shared))
        .merge(Serialized::defaults(flags));
    Ok(f)
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).expect("parse")
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        Jail::expect_with(|jail| {
            jail.create_file("k.toml", "cache_memory = \"1MiB\"\nchunk_size = \"64KiB\"\nregion = \"file\"\nread_ahead = 7\n")?;
            jail.set_env("KEYFRAME_CHUNK_SIZE", "128KiB");
            jail.set_env("KEYFRAME_REGION", "env");
            let cli = parse(&["keyframe", "--config", "k.toml", "edge", "--region", "flag"]);
            let Command::Edge(flags) = &cli.command else {
                panic!("not edge")
            };
            let cfg: keyframe_edge::Config =
                layers(&cli.shared, flags).map_err(|e| e.0)?.extract()?;
            assert_eq!(cfg.region.as_deref(), Some("flag"));
            assert_eq!(cfg.chunk_size, ByteSize(128 << 10));
            assert_eq!(cfg.cache_memory, ByteSize(1 << 20));
            assert_eq!(cfg.read_ahead, 7);
            assert_eq!(cfg.cache_disk_size, ByteSize(10 << 30));
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_the_option() {
        Jail::expect_with(|jail| {
            jail.set_env("KEYFRAME_CACHE_MEMORY", "12 parsecs");
            let cli = parse(&["keyframe", "edge"]);
            let Command::Edge(flags) = &cli.command else {
                panic!("not edge")
            };
            let err = layers(&cli.shared, flags)
                .map_err(|e| e.0)?
                .extract::<keyframe_edge::Config>()
                .map_err(ConfigError::from)
                .expect_err("must fail");
            assert!(err.0.contains("'cache-memory'"), "{err}");
            assert!(err.0.contains("KEYFRAME_"), "{err}");
            assert!(!err.0.contains('\n'), "{err}");
            Ok(())
        });
    }

    #[test]
    fn upstream_lists_split_on_commas() {
        Jail::expect_with(|_| {
            let cli = parse(&["keyframe", "edge", "--upstream", "http://a:1,http://b:2"]);
            let Command::Edge(flags) = &cli.command else {
                panic!("not edge")
            };
            let cfg: keyframe_edge::Config =
                layers(&cli.shared, flags).map_err(|e| e.0)?.extract()?;
            assert_eq!(cfg.upstream, vec!["http://a:1", "http://b:2"]);
            Ok(())
        });
    }

    #[test]
    fn shared_defaults_derive_from_the_data_dir() {
        Jail::expect_with(|_| {
            let cli = parse(&["keyframe", "--data-dir", "/srv/kf", "migrate"]);
            #[derive(Serialize)]
            struct NoFlags {}
            let s: Shared = layers(&cli.shared, &NoFlags {})
                .map_err(|e| e.0)?
                .extract()?;
            assert_eq!(s.db_url(), "sqlite:///srv/kf/keyframe.db");
            assert_eq!(s.store_url(), "file:///srv/kf/objects");
            Ok(())
        });
    }

    /// Every key of every config struct is documented in deploy/keyframe.toml, and
    /// the file names no key that does not exist.
    #[test]
    fn the_example_config_lists_every_option() {
        use std::collections::BTreeSet;
        let known = known_options();
        let text = include_str!("../deploy/keyframe.toml");
        let documented: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.trim_start_matches('#').trim_start().split_once(" = "))
            .map(|(k, _)| k.trim().to_string())
            .filter(|k| {
                k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        let missing: Vec<_> = known.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&known).collect();
        assert!(
            missing.is_empty(),
            "options missing from deploy/keyframe.toml: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "deploy/keyframe.toml documents unknown options: {unknown:?}"
        );
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
