//! The process's log: tracing to stderr through a worker thread behind a bounded,
//! lossy queue, so that logging never blocks or stops a server.

use crate::cli::{ConfigError, LogFormat, Shared};
use crate::Failure;

/// Log lines per worker queue: past this many waiting lines (a slow or stalled
/// sink), new ones are dropped and counted rather than block the thread logging.
const LOG_QUEUE_LINES: usize = 16_384;

/// Sets up tracing to stderr through a worker thread. Logging never blocks or
/// stops a server: lines go through a bounded queue ([`LOG_QUEUE_LINES`]) that
/// drops them when full, and a line stderr refuses (`EPIPE` when the reader of a
/// pipe went away) is dropped too; both are counted in
/// `keyframe_log_lines_dropped_total`. The returned guard flushes on drop.
pub fn init(shared: &Shared) -> Result<tracing_appender::non_blocking::WorkerGuard, Failure> {
    let filter = tracing_subscriber::EnvFilter::try_new(&shared.log)
        .map_err(|e| ConfigError(format!("invalid value for option 'log': {e}")))?;
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("keyframe-log")
        .finish(LogSink {
            // A descriptor of its own: the worker, blocked on a full pipe, holds no
            // lock that a last `error:` line of `main` would wait for.
            out: match std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
                Ok(fd) => Box::new(std::fs::File::from(fd)),
                Err(_) => Box::new(std::io::stderr()),
            },
            failed: failed.clone(),
        });
    let queue_full = writer.error_counter();
    keyframe_http::metrics::set_log_lines_dropped(move || {
        failed.load(std::sync::atomic::Ordering::Relaxed)
            + u64::try_from(queue_full.dropped_lines()).unwrap_or(u64::MAX)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .log_internal_errors(false)
        .with_writer(writer);
    let res = match shared.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    res.map_err(|e| Failure::Runtime(anyhow::anyhow!("tracing: {e}")))?;
    Ok(guard)
}

/// stderr as the log's worker thread writes it: a line that cannot be written is
/// counted and dropped, never an error (the worker would lose the rest of its batch).
struct LogSink {
    out: Box<dyn std::io::Write + Send>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// The worker writes each line with one `write_all`.
    fn write_all(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.out.write_all(line).is_err() {
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
