//! The state every handler shares: configuration, the database and object store,
//! the hot-read cache and its change channel, the login limiter, regions, the URL
//! signer, the ingest pipeline, the clock and the history writer. `server` builds
//! it; `api` reads it.

use std::sync::Arc;

use keyframe_core::region::RegionMap;
use keyframe_core::store::Store;
use prometheus_client::registry::Registry;
use tokio_util::sync::DropGuard;

use crate::auth::{LoginLimiter, Passwords};
use crate::cache::{Changes, HotCache};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::Db;
use crate::events::Events;
use crate::history::{EventBudget, Writer};
use crate::playback::Signer;
use crate::uploads::Uploads;

/// Shared state of the catalog's handlers.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub store: Store,
    pub(crate) registry: Arc<Registry>,
    pub(crate) hot: Arc<HotCache>,
    pub(crate) changes: Changes,
    pub(crate) passwords: Arc<Passwords>,
    pub(crate) limiter: Arc<LoginLimiter>,
    pub(crate) regions: Arc<RegionMap>,
    pub(crate) signer: Arc<Signer>,
    pub(crate) uploads: Arc<dyn Uploads>,
    pub(crate) clock: SharedClock,
    /// The watch-history write queue.
    pub(crate) history: Writer,
    /// With `events`: the JetStream the history API appends to instead.
    pub(crate) events: Option<Events>,
    /// Watch events each viewer may still send.
    pub(crate) event_budget: Arc<EventBudget>,
    pub(crate) openapi_json: Arc<str>,
    /// Stops the cache's background tasks when the last clone is dropped.
    pub(crate) _tasks: Arc<DropGuard>,
}

impl AppState {
    /// Now, in Unix milliseconds, by the injected clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The OpenAPI document, serialized once.
    pub(crate) fn openapi_json(&self) -> String {
        self.openapi_json.to_string()
    }
}
