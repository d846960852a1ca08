//! Overrides of `cluster.toml` from the command line or `TROUPE_*` environment variables.
//!
//! Each numeric setting is named like its key in the file; an override wins over the file, and
//! an error about an overridden value says it came from a flag or variable.

use std::path::PathBuf;

use super::LogFormat;

/// Overrides of `cluster.toml`, shared by every subcommand that reads it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// The cluster configuration [default: ./cluster.toml if present, else the built-in default]
    #[arg(long, env = "TROUPE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Root of the nodes' data directories (overrides cluster.data_dir)
    #[arg(long, env = "TROUPE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Log level or RUST_LOG-style filter (overrides log.level; RUST_LOG wins over both)
    #[arg(long, env = "TROUPE_LOG", global = true)]
    pub log_level: Option<String>,
    /// Log format: auto, json or pretty (overrides log.format)
    #[arg(long, env = "TROUPE_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// Where trace spans are exported: an OTLP/HTTP collector's base URL such as
    /// http://127.0.0.1:4318 (overrides telemetry.otlp_endpoint; empty: off)
    #[arg(long, env = "TROUPE_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// Numeric settings that may be overridden. Each field is named like its key in the file.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Settings (override cluster.toml)")]
pub struct Tuning {
    /// cluster.heartbeat_interval_ms
    #[arg(long, env = "TROUPE_HEARTBEAT_INTERVAL_MS", global = true)]
    pub heartbeat_interval_ms: Option<u64>,
    /// cluster.suspect_after_ms
    #[arg(long, env = "TROUPE_SUSPECT_AFTER_MS", global = true)]
    pub suspect_after_ms: Option<u64>,
    /// cluster.down_after_ms
    #[arg(long, env = "TROUPE_DOWN_AFTER_MS", global = true)]
    pub down_after_ms: Option<u64>,
    /// cluster.reconnect_min_ms
    #[arg(long, env = "TROUPE_RECONNECT_MIN_MS", global = true)]
    pub reconnect_min_ms: Option<u64>,
    /// cluster.reconnect_max_ms
    #[arg(long, env = "TROUPE_RECONNECT_MAX_MS", global = true)]
    pub reconnect_max_ms: Option<u64>,
    /// http.body_limit_bytes
    #[arg(long, env = "TROUPE_BODY_LIMIT_BYTES", global = true)]
    pub body_limit_bytes: Option<u64>,
    /// http.request_timeout_ms
    #[arg(long, env = "TROUPE_REQUEST_TIMEOUT_MS", global = true)]
    pub request_timeout_ms: Option<u64>,
    /// http.shutdown_grace_ms
    #[arg(long, env = "TROUPE_SHUTDOWN_GRACE_MS", global = true)]
    pub shutdown_grace_ms: Option<u64>,
}

impl ConfigArgs {
    /// The overrides as `TROUPE_*` environment variables, for child processes.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let t = &self.tuning;
        let numbers = [
            ("TROUPE_HEARTBEAT_INTERVAL_MS", t.heartbeat_interval_ms),
            ("TROUPE_SUSPECT_AFTER_MS", t.suspect_after_ms),
            ("TROUPE_DOWN_AFTER_MS", t.down_after_ms),
            ("TROUPE_RECONNECT_MIN_MS", t.reconnect_min_ms),
            ("TROUPE_RECONNECT_MAX_MS", t.reconnect_max_ms),
            ("TROUPE_BODY_LIMIT_BYTES", t.body_limit_bytes),
            ("TROUPE_REQUEST_TIMEOUT_MS", t.request_timeout_ms),
            ("TROUPE_SHUTDOWN_GRACE_MS", t.shutdown_grace_ms),
        ];
        let mut env: Vec<_> = numbers
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v.to_string())))
            .collect();
        if let Some(p) = &self.config {
            env.push(("TROUPE_CONFIG", p.display().to_string()));
        }
        if let Some(p) = &self.data_dir {
            env.push(("TROUPE_DATA_DIR", p.display().to_string()));
        }
        if let Some(l) = &self.log_level {
            env.push(("TROUPE_LOG", l.clone()));
        }
        if let Some(f) = self.log_format {
            env.push(("TROUPE_LOG_FORMAT", f.to_string()));
        }
        if let Some(e) = &self.otlp_endpoint {
            env.push(("TROUPE_OTLP_ENDPOINT", e.clone()));
        }
        env
    }
}
