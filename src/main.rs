//! The `keyframe` binary: parses flags, starts the async runtime, dispatches to
//! the command's module under `commands/`, and turns the outcome into an exit
//! status. Nothing here is logic of its own.

mod cli;
mod commands;
mod logging;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, ConfigError, Shared};

/// Exit status for a usage or configuration error.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(EXIT_USAGE)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line naming the flag and the problem.
            say_err(format_args!("{}", cli::usage_line(&e)));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.shared.threads {
        builder.worker_threads(usize::from(n));
    }
    if matches!(cli.command, Command::Ballista(_) | Command::Recommend(_)) {
        // DataFusion's and Ballista's planners recurse deeply (Ballista's own
        // binaries run on 32 MiB stacks); address space only, not memory.
        builder.thread_stack_size(32 << 20);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            say_err(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let mut log = None;
    let result = runtime.block_on(run(cli, &mut log));
    // Lets the runtime's tasks go, then the log's worker write what it holds (for at
    // most a second: a stalled sink cannot hold the exit up).
    drop(runtime);
    drop(log);
    match result {
        Ok(code) => code,
        Err(Failure::Config(e)) => {
            say_err(format_args!("error: {e}"));
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Runtime(e)) => {
            say_err(format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr, dropped (never a panic, as with `eprintln!`) when stderr is
/// gone.
fn say_err(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// How a command failed: bad configuration (exit 2) or at run time (exit 1).
enum Failure {
    Config(ConfigError),
    Runtime(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Config(e)
    }
}

impl From<figment::Error> for Failure {
    fn from(e: figment::Error) -> Self {
        Failure::Config(e.into())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

/// Exit 0 for a command that succeeded, else 1 (it has said why).
fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the command; `log` keeps the log's worker (see [`logging::init`]) for `main`
/// to drop once everything else has stopped.
async fn run(
    cli: Cli,
    log: &mut Option<tracing_appender::non_blocking::WorkerGuard>,
) -> Result<ExitCode, Failure> {
    let layers = cli.layers()?;
    let shared: Shared = layers.extract()?;
    *log = Some(logging::init(&shared)?);
    use commands::{content, recommend, servers, tools, user};
    let threads = cli.shared.threads;
    match cli.command {
        Command::Serve(_) => commands::serve::run(&shared, &layers).await,
        Command::Origin(_) => servers::origin(&shared, &layers, threads).await,
        Command::Edge(_) => servers::edge(&layers, threads).await,
        Command::Catalog(_) => servers::catalog(&shared, &layers).await,
        Command::Healthcheck(args) => tools::healthcheck(&args).await,
        Command::Bench(cli::BenchCmd {
            command: cli::BenchSub::HistorySynth(args),
        }) => commands::synth::run(&shared, &args).await,
        Command::Bench(cli::BenchCmd {
            command: cli::BenchSub::Other(command),
        }) => tools::bench(keyframe_bench::BenchCli { command }).await,
        Command::Ballista(cmd) => commands::ballista::run(cmd).await,
        Command::Migrate(_) => content::migrate(&shared).await,
        Command::Ingest(cmd) => content::ingest(&shared, cmd.args).await,
        Command::Gc(cmd) => content::gc(&shared, cmd.args).await,
        Command::User(cmd) => user::run(&shared, &layers, &cmd.action).await,
        Command::Recommend(flags) => recommend::run(&shared, &layers, &flags).await,
    }
}
