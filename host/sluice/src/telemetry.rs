//! Logging for the commands that are not `serve` (which also sets up tracing from its file).
use sluice_config::{LogConfig, LogFormat, TracingConfig};

/// Logs to stderr at `level` (`RUST_LOG` wins); no spans.
pub fn init(format: LogFormat, level: &str) {
    let log = LogConfig {
        format,
        level: level.to_string(),
    };
    let _ = sluice_telemetry::init(&log, &TracingConfig::default());
}
