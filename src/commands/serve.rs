//! `keyframe serve`: one node — origin, edge and catalog in one process, wired to
//! each other once their ports are bound, in one region, with the origin behind
//! the edge on loopback.

use std::process::ExitCode;

use anyhow::Context;
use figment::Figment;
use tokio_util::sync::CancellationToken;

use super::servers::{bind, origin_server, shutdown_signal};
use super::{
    batch_runner, check_catalog, check_catalog_tls, connect_events, open_db, open_store, uploads,
};
use crate::cli::{self, ConfigError, Shared};
use crate::Failure;

/// `keyframe serve`: resolves the three servers' configurations as one node's,
/// then runs them until a signal.
pub async fn run(shared: &Shared, layers: &Figment) -> Result<ExitCode, Failure> {
    let serve: cli::ServeAddrs = layers.extract()?;
    let mut origin: keyframe_origin::Config = layers.extract()?;
    let mut edge: keyframe_edge::Config = layers.extract()?;
    let mut catalog: keyframe_catalog::Config = layers.extract()?;
    check_catalog(&catalog)?;
    check_catalog_tls(&catalog)?;
    // One node is one region (`--region`, default `local`): every viewer the
    // header does not place is in it, for the catalog and the edge alike.
    let region = node_region(edge.region.as_deref())?;
    if layers.find_value("default_region").is_err() {
        catalog.default_region = region.clone();
    }
    if layers.find_value("region_networks").is_err() {
        edge.region_networks = vec![format!("0.0.0.0/0={region}"), format!("::/0={region}")];
    }
    origin.listen = serve.origin_listen;
    // Under `serve` TLS is the edge's and the catalog's: the edge → origin hop
    // stays on loopback.
    origin.tls_cert = None;
    origin.tls_key = None;
    // And so are tokens: the edge is the node's one public door, checks a
    // token and strips it before it fetches from this origin, which must then
    // not ask for one, and so must be reachable from this host only.
    if origin.token_key.as_deref().is_some_and(|k| !k.is_empty())
        && !origin.listen.ip().is_loopback()
    {
        return Err(ConfigError(format!(
            "invalid value for option 'origin-listen': {}: with a token key, serve's \
             origin must listen on a loopback address (the edge checks tokens; the \
             origin behind it does not)",
            origin.listen
        ))
        .into());
    }
    origin.token_key = None;
    edge.listen = serve.edge_listen;
    catalog.listen = serve.catalog_listen;
    let wiring = Wiring {
        edge_to_origin: layers.find_value("upstream").is_err()
            && layers.find_value("parent").is_err(),
        catalog_to_edge: layers.find_value("edge_url").is_err(),
    };
    serve_all(shared, origin, edge, catalog, wiring).await?;
    Ok(ExitCode::SUCCESS)
}

/// The region of a `serve` node: its `--region`, else [`cli::NODE_REGION`].
pub fn node_region(region: Option<&str>) -> Result<String, ConfigError> {
    let r = region
        .unwrap_or(cli::NODE_REGION)
        .trim()
        .to_ascii_lowercase();
    if keyframe_catalog::playback::valid_region(&r) {
        Ok(r)
    } else {
        Err(ConfigError(format!(
            "invalid value for option 'region': '{r}' is not a region name (1–32 of a-z 0-9 _ -)"
        )))
    }
}

/// Checks an edge's settings without starting it (under `serve` the edge is made
/// once the origin is bound, so its upstream may not be known yet); the disk tier
/// is opened later.
fn check_edge(edge: &keyframe_edge::Config, upstream_unknown: bool) -> Result<(), ConfigError> {
    let mut probe = edge.clone();
    probe.cache_disk = None;
    if upstream_unknown {
        probe.upstream = vec!["http://127.0.0.1:1".into()];
    }
    keyframe_edge::Server::new(probe)
        .map(drop)
        .map_err(|e| ConfigError(e.to_string()))
}

/// Which defaults of `serve` point one server at another (known only once bound).
struct Wiring {
    edge_to_origin: bool,
    catalog_to_edge: bool,
}

async fn serve_all(
    shared: &Shared,
    origin: keyframe_origin::Config,
    mut edge: keyframe_edge::Config,
    mut catalog: keyframe_catalog::Config,
    wiring: Wiring,
) -> Result<(), Failure> {
    // Every setting is checked before a port is bound; the edge itself is made
    // once the origin's address is known.
    check_edge(&edge, wiring.edge_to_origin).map_err(Failure::Config)?;
    let store = open_store(shared)?;
    let db = open_db(shared).await?;
    let origin_server = origin_server(shared, origin.clone(), store.clone())?;
    // The event stream (if any) is reached before a port is bound.
    let events = connect_events(&catalog).await?;
    let batch = batch_runner(shared, &catalog)?;
    let origin_l = bind("origin", origin.listen, false).await?;
    let edge_tls = edge.tls_cert.is_some();
    let edge_l = bind("edge", edge.listen, edge_tls).await?;
    let catalog_l = bind("catalog", catalog.listen, catalog.tls_cert.is_some()).await?;
    if wiring.edge_to_origin {
        edge.upstream = vec![format!("http://{}", local_addr(&origin_l)?)];
    }
    if wiring.catalog_to_edge {
        let scheme = if edge_tls { "https" } else { "http" };
        catalog.edge_url = format!("{scheme}://{}", local_addr(&edge_l)?);
    }
    let edge_server = keyframe_edge::Server::new(edge.clone())
        .map_err(|e| Failure::Config(ConfigError(e.to_string())))?;
    let stop = CancellationToken::new();
    let signal = tokio::spawn(shutdown_signal(stop.clone()));
    // The edge's downloads in flight need the origin until they end: the origin
    // stops only once the edge has (each after its own grace), so a download through
    // the edge is never cut by the origin closing under it.
    let edge_stopped = CancellationToken::new();
    let o = tokio::spawn(origin_server.run(origin_l, edge_stopped.clone().cancelled_owned()));
    let e = tokio::spawn({
        let done = edge_stopped.clone();
        let run = edge_server.run(edge_l, stop.clone().cancelled_owned());
        async move {
            let _done = done.drop_guard();
            run.await;
        }
    });
    let c = tokio::spawn(
        keyframe_catalog::server::Catalog::new(catalog, db.clone(), store.clone())
            .uploads(uploads(shared, &store, &db))
            .events(events)
            .batch(batch)
            .run(catalog_l, stop.clone().cancelled_owned()),
    );
    let (o, e, c) = tokio::join!(o, e, c);
    signal.abort();
    db.close().await;
    o.context("origin task failed")?;
    e.context("edge task failed")?;
    c.context("catalog task failed")?
        .context("catalog server failed")?;
    tracing::info!("stopped");
    Ok(())
}

fn local_addr(l: &tokio::net::TcpListener) -> Result<std::net::SocketAddr, Failure> {
    Ok(l.local_addr().context("local address")?)
}
