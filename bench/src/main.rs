//! `keyframe-bench`: the load generator and conformance suite on their own (the
//! same [`BenchCli`] as `keyframe bench`), for scripts that should not need the whole binary.

use clap::Parser;
use keyframe_bench::BenchCli;

#[derive(Debug, Parser)]
#[command(
    name = "keyframe-bench",
    version,
    about = "Load and player benchmarks against any HTTP URL"
)]
struct Cli {
    #[command(flatten)]
    bench: BenchCli,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match keyframe_bench::dispatch(cli.bench).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("keyframe-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
