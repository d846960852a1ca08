//! `[log]`: the level and the format of the node's logs.
//!
//! ```toml
//! [log]
//! level = "info"                # an EnvFilter directive; RUST_LOG wins over it
//! format = "auto"               # auto | json | pretty
//! ```

use std::fmt;

use serde::Deserialize;

use super::ConfigArgs;

fn default_level() -> String {
    "info".into()
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON lines when stderr is not a terminal, human-readable when it is.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Json => "json",
            Self::Pretty => "pretty",
        })
    }
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// An `EnvFilter` directive.
    pub level: String,
    /// The output format.
    pub format: LogFormat,
}

/// `[log]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default = "default_level")]
    level: String,
    #[serde(default)]
    format: LogFormat,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: default_level(),
            format: LogFormat::default(),
        }
    }
}

impl RawLog {
    /// Applies the command line's or the environment's overrides.
    pub(super) fn override_with(&mut self, args: &ConfigArgs) {
        if let Some(level) = &args.log_level {
            self.level.clone_from(level);
        }
        self.format = args.log_format.unwrap_or(self.format);
    }

    /// The section: nothing in it is refused.
    pub(super) fn build(self) -> LogSettings {
        LogSettings {
            level: self.level,
            format: self.format,
        }
    }
}
