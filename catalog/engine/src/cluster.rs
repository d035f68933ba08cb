//! Ballista's scheduler and executor, run by the `keyframe` binary
//! (`keyframe ballista scheduler|executor`) from the upstream crates'
//! process entry points, so that the client, the scheduler and the executors are
//! one Ballista and DataFusion version.
//!
//! Both sides run sessions with Ballista's S3-capable object-store registry: a
//! client's `s3.*` options (from its store URL) reach every executor with the plan,
//! and credentials come from each process's AWS environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::object_store::{session_config_with_s3_support, session_state_with_s3_support};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

use crate::EngineError;

/// Runs a scheduler listening on `listen` until the process ends.
pub async fn scheduler(listen: SocketAddr) -> Result<(), EngineError> {
    let config = SchedulerConfig {
        bind_host: listen.ip().to_string(),
        bind_port: listen.port(),
        external_host: listen.ip().to_string(),
        ..SchedulerConfig::default()
    }
    .with_override_config_producer(Arc::new(session_config_with_s3_support))
    .with_override_session_builder(Arc::new(session_state_with_s3_support));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(cluster_err)?;
    start_server(cluster, listen, Arc::new(config))
        .await
        .map_err(cluster_err)
}

/// What an executor needs.
#[derive(Clone, Debug)]
pub struct ExecutorOptions {
    /// The scheduler's `HOST:PORT`.
    pub scheduler: (String, u16),
    /// Where the executor serves its Arrow Flight (shuffle) data.
    pub listen: SocketAddr,
    /// The executor's gRPC port (on the same host); default `listen`'s port + 1.
    pub grpc_port: Option<u16>,
    /// Shuffle files and spills.
    pub work_dir: PathBuf,
    /// Tasks run at once; 0 = one per core.
    pub concurrency: usize,
    /// Bytes the executor's operators may hold (sorts and aggregates spill past
    /// it); 0 = no limit.
    pub memory_limit: u64,
}

/// Runs an executor registered with its scheduler until the process ends.
pub async fn executor(o: ExecutorOptions) -> Result<(), EngineError> {
    std::fs::create_dir_all(&o.work_dir)
        .map_err(|e| EngineError::Engine(format!("work dir {}: {e}", o.work_dir.display())))?;
    let work_dir = o.work_dir.to_string_lossy().into_owned();
    let temp = work_dir.clone();
    let memory_limit = o.memory_limit;
    let grpc_port = match o.grpc_port {
        Some(p) => p,
        None => o.listen.port().checked_add(1).ok_or_else(|| {
            EngineError::Engine("--listen port 65535 leaves no gRPC port; give --grpc-port".into())
        })?,
    };
    let mut config = ExecutorProcessConfig {
        bind_host: o.listen.ip().to_string(),
        external_host: Some(o.listen.ip().to_string()),
        port: o.listen.port(),
        grpc_port,
        scheduler_host: o.scheduler.0,
        scheduler_port: o.scheduler.1,
        work_dir: Some(work_dir),
        ..ExecutorProcessConfig::default()
    };
    if o.concurrency > 0 {
        config.vcores = o.concurrency;
    }
    config.override_config_producer = Some(Arc::new(session_config_with_s3_support));
    config.override_runtime_producer = Some(Arc::new(move |session| {
        crate::with_memory_limit(
            RuntimeEnvBuilder::new()
                .with_temp_file_path(temp.clone())
                .with_object_store_registry(crate::location::registry(session)),
            memory_limit,
        )
        .build_arc()
    }));
    start_executor_process(Arc::new(config))
        .await
        .map_err(cluster_err)
}

fn cluster_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Engine(e.to_string())
}
