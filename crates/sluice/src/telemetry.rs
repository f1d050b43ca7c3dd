//! Logging set-up: `tracing` to stderr, as text or JSON; `RUST_LOG` overrides the configured level.
use tracing_subscriber::EnvFilter;

use sluice_config::LogFormat;

/// Install the global subscriber (a second call is a no-op).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
