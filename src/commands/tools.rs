//! `keyframe bench` and `keyframe healthcheck`: clients of a running server over
//! HTTP, with no store or database of their own.

use std::process::ExitCode;

use super::say;
use crate::cli::{ConfigError, HealthcheckArgs};
use crate::{exit, Failure};

/// `keyframe bench`: its flags are checked (a usage error) before anything runs.
pub async fn bench(args: keyframe_bench::BenchCli) -> Result<ExitCode, Failure> {
    keyframe_bench::check(&args).map_err(|e| ConfigError(format!("{e:#}")))?;
    let ok = keyframe_bench::dispatch(args)
        .await
        .map_err(Failure::Runtime)?;
    Ok(exit(ok))
}

/// `keyframe healthcheck`: exit 0 on a 2xx answer, else one line and exit 1.
pub async fn healthcheck(args: &HealthcheckArgs) -> Result<ExitCode, Failure> {
    let url = keyframe_edge::probe::health_url(&args.target).map_err(ConfigError)?;
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 3600.0) {
        return Err(ConfigError(format!(
            "--timeout must be between 0 and 3600 seconds, not {}",
            args.timeout
        ))
        .into());
    }
    let timeout = std::time::Duration::from_secs_f64(args.timeout);
    match keyframe_edge::probe::probe(&url, args.ca.as_deref(), timeout).await {
        Ok(status) => {
            say(format_args!("healthy: {url} answered {status}"));
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => Err(Failure::Runtime(anyhow::anyhow!(why))),
    }
}
