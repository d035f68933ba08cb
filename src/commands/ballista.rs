//! `keyframe ballista scheduler|executor`: Apache Ballista's processes from the
//! upstream crates (via `keyframe-engine`), so a cluster runs the very Ballista and
//! DataFusion that `keyframe recommend --engine ballista://…` plans with. They run
//! until killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::say;
use crate::cli::ConfigError;
use crate::Failure;

/// `keyframe ballista …`.
#[derive(Debug, Args)]
pub struct BallistaCmd {
    #[command(subcommand)]
    pub role: Role,
}

/// Which Ballista process.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// The scheduler: plans jobs into stages and hands tasks to executors.
    Scheduler {
        /// Where it listens for clients and executors (gRPC).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50050")]
        listen: SocketAddr,
    },
    /// An executor: registers with the scheduler and runs tasks.
    Executor {
        /// The scheduler's HOST:PORT.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
        scheduler: String,
        /// Where it serves shuffle data (Arrow Flight).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Its gRPC port on the same host [default: the --listen port + 1].
        #[arg(long, value_name = "PORT")]
        grpc_port: Option<u16>,
        /// Shuffle files and spills.
        #[arg(long, value_name = "DIR")]
        work_dir: PathBuf,
        /// Tasks at once [default: one per core].
        #[arg(long, value_name = "N", default_value_t = 0)]
        concurrency: usize,
        /// Memory its operators may hold, e.g. `2GiB`: past it sorts and aggregates
        /// spill to --work-dir [default: no limit].
        #[arg(long, value_name = "SIZE")]
        memory_limit: Option<keyframe_core::size::ByteSize>,
    },
}

/// Runs the process until it is killed (or fails to start: one line, exit 1).
pub async fn run(cmd: BallistaCmd) -> Result<ExitCode, Failure> {
    let r = match cmd.role {
        Role::Scheduler { listen } => {
            say(format_args!("ballista scheduler listening on {listen}"));
            keyframe_engine::cluster::scheduler(listen).await
        }
        Role::Executor {
            scheduler,
            listen,
            grpc_port,
            work_dir,
            concurrency,
            memory_limit,
        } => {
            let (host, port) = scheduler
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| {
                    ConfigError(format!(
                        "invalid value '{scheduler}' for '--scheduler': expected HOST:PORT"
                    ))
                })?;
            say(format_args!("ballista executor listening on {listen}"));
            keyframe_engine::cluster::executor(keyframe_engine::cluster::ExecutorOptions {
                scheduler: (host, port),
                listen,
                grpc_port,
                work_dir,
                concurrency,
                memory_limit: memory_limit.map_or(0, |m| m.bytes()),
            })
            .await
        }
    };
    r.map_err(|e| Failure::Runtime(anyhow::anyhow!("ballista: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
