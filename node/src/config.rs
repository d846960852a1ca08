//! `cluster.toml`: from raw text to the validated [`NodeConfig`] that everything else sees.
//!
//! The file is deserialized into private `Raw*` structs, one per section, that refuse unknown
//! keys and name their defaults; each section is then checked into its part of [`NodeConfig`].
//! Every error names the file, the line and the key. Settings can be overridden by CLI flags or
//! `TROUPE_*` environment variables ([`ConfigArgs`]); a value that came from an override is
//! named as such in errors.
//!
//! Which file: `--config PATH` (or `TROUPE_CONFIG`); else `./cluster.toml` if it exists; else the
//! default built into the binary (three nodes on 127.0.0.1). Relative paths in a file are taken
//! from the file's directory; for the built-in default, from the working directory.
//!
//! Each section builds and validates itself, in its own module:
//!
//! - `cluster`: `[cluster]`, the cookie, data directory, detector and reconnect timings, cache.
//! - `http`: `[http]`, the edge's body limit and deadlines ([`HttpSettings`]).
//! - `log`: `[log]` ([`LogSettings`], [`LogFormat`]).
//! - `nodes`: `[[node]]` ([`NodeEntry`]).
//! - `services`: `[services.<name>]` (the runtime's `ServiceSpec`).
//! - `events`: `[events]`, the event bus (how many refusals make a dead letter).
//! - `payments`: `[payments]`, a new wallet's opening balance.
//! - `telemetry`: `[telemetry]`, where trace spans are exported (OTLP over HTTP), if anywhere.
//! - `args`: the overrides ([`ConfigArgs`]); `check`: positions in errors and relative paths;
//!   `settings`: the validated configuration to the runtime's settings.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use troupe_runtime::ServiceSpec;
use troupe_runtime::cluster::{DetectorSettings, ReconnectSettings};

mod args;
mod check;
mod cluster;
mod events;
mod http;
mod log;
mod nodes;
mod payments;
mod services;
mod settings;
mod telemetry;

pub use args::{ConfigArgs, Tuning};
pub use http::HttpSettings;
pub use log::{LogFormat, LogSettings};
pub use nodes::{DEFAULT_LINK_PORT_OFFSET, NodeEntry};

use check::Checker;

/// The default cluster, built into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../cluster.toml");

/// A configuration problem; the message is meant for the person who wrote the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file.
    File(PathBuf),
    /// The default built into the binary.
    Embedded,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Embedded => f.write_str("<built-in cluster.toml>"),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where it came from.
    pub source: ConfigSource,
    /// The cookie from the file, if any (`TROUPE_COOKIE` and generated cookies: see `secrets`).
    pub cookie: Option<String>,
    /// The root of the nodes' data directories.
    pub data_dir: PathBuf,
    /// sled's page cache per node, in bytes.
    pub store_cache_bytes: u64,
    /// Failure detector timings.
    pub detector: DetectorSettings,
    /// Reconnect timings.
    pub reconnect: ReconnectSettings,
    /// The HTTP edge.
    pub http: HttpSettings,
    /// Logging.
    pub log: LogSettings,
    /// Every node, in file order.
    pub nodes: Vec<NodeEntry>,
    /// How each service runs (`echo` is always there).
    pub services: BTreeMap<String, ServiceSpec>,
    /// Refusals of an event by a subscriber before it goes to the dead letters.
    pub event_max_attempts: u32,
    /// What a new user's wallet holds, in cents.
    pub opening_balance_cents: u64,
    /// Where trace spans are posted (OTLP over HTTP, the full `/v1/traces` URL); None: no
    /// export.
    pub otlp_traces_url: Option<String>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `cluster.toml` as written: one raw struct per section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    cluster: cluster::RawCluster,
    #[serde(default)]
    http: http::RawHttp,
    #[serde(default)]
    log: log::RawLog,
    #[serde(default, rename = "node")]
    nodes: Vec<nodes::RawNode>,
    #[serde(default)]
    services: BTreeMap<String, services::RawService>,
    #[serde(default)]
    events: events::RawEvents,
    #[serde(default)]
    payments: payments::RawPayments,
    #[serde(default)]
    telemetry: telemetry::RawTelemetry,
}

impl NodeConfig {
    /// Finds, reads, overrides and validates the configuration.
    pub fn load(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let (source, text) = match &args.config {
            Some(path) => (ConfigSource::File(path.clone()), read(path)?),
            None if Path::new("cluster.toml").is_file() => {
                let path = PathBuf::from("cluster.toml");
                (ConfigSource::File(path.clone()), read(&path)?)
            }
            None => (ConfigSource::Embedded, EMBEDDED_DEFAULT.to_string()),
        };
        Self::parse(source, &text, args)
    }

    /// Validates `text` as if read from `source`.
    pub fn parse(source: ConfigSource, text: &str, args: &ConfigArgs) -> Result<Self, ConfigError> {
        let check = Checker::new(&source, text);
        let mut raw: RawConfig =
            toml::from_str(text).map_err(|e| check.whole(e.to_string().trim_end()))?;
        raw.cluster.override_with(&args.tuning);
        raw.http.override_with(&args.tuning);
        raw.log.override_with(args);
        raw.telemetry.override_with(args.otlp_endpoint.as_ref());

        // The order of the checks decides which mistake is reported first: keep it.
        let cluster = raw
            .cluster
            .build_and_validate(&check, args.data_dir.as_ref())?;
        let http = raw.http.build_and_validate(&check)?;
        let nodes = nodes::build_and_validate(&check, &raw.nodes, &cluster.data_dir)?;
        let node_ids: Vec<_> = nodes.iter().map(|n| n.id.clone()).collect();
        let services = services::build_and_validate(&check, &raw.services, &node_ids)?;
        let store_cache_bytes = raw.cluster.store_cache_bytes(&check)?;
        let event_max_attempts = raw.events.build_and_validate(&check)?;
        let opening_balance_cents = raw.payments.build_and_validate(&check)?;
        let otlp_traces_url = raw.telemetry.build_and_validate(&check)?;
        Ok(Self {
            source,
            cookie: cluster.cookie,
            data_dir: cluster.data_dir,
            store_cache_bytes,
            detector: cluster.detector,
            reconnect: cluster.reconnect,
            http,
            log: raw.log.build(),
            nodes,
            services,
            event_max_attempts,
            opening_balance_cents,
            otlp_traces_url,
        })
    }

    /// The configuration of a file that names only `nodes` (id, then cluster, HTTP and link
    /// ports on 127.0.0.1) and `data_dir`: every other setting is its default.
    #[cfg(test)]
    pub(crate) fn for_test(data_dir: &Path, nodes: &[(&str, [u16; 3])]) -> Self {
        let embedded = ConfigSource::Embedded;
        let check = Checker::new(&embedded, "");
        let valid = "the defaults are valid";
        let cluster = cluster::RawCluster::default()
            .build_and_validate(&check, Some(&data_dir.to_path_buf()))
            .expect(valid);
        let local = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let nodes: Vec<_> = nodes
            .iter()
            .map(|(id, [cluster_port, http_port, link_port])| NodeEntry {
                id: troupe_runtime::NodeId::try_new(id).expect("a valid node id"),
                cluster_addr: local(*cluster_port),
                http_addr: local(*http_port),
                link_addr: local(*link_port),
                data_dir: data_dir.join(id),
            })
            .collect();
        let ids: Vec<_> = nodes.iter().map(|n| n.id.clone()).collect();
        Self {
            source: ConfigSource::Embedded,
            cookie: None,
            data_dir: cluster.data_dir,
            store_cache_bytes: cluster::RawCluster::default()
                .store_cache_bytes(&check)
                .expect(valid),
            detector: cluster.detector,
            reconnect: cluster.reconnect,
            http: http::RawHttp::default()
                .build_and_validate(&check)
                .expect(valid),
            log: log::RawLog::default().build(),
            nodes,
            services: services::build_and_validate(&check, &BTreeMap::new(), &ids).expect(valid),
            event_max_attempts: troupe_runtime::events::bus::DEFAULT_MAX_ATTEMPTS,
            opening_balance_cents: troupe_actors::payments::OPENING_BALANCE_DEFAULT,
            otlp_traces_url: None,
        }
    }

    /// The entry of node `id`.
    pub fn node(&self, id: &str) -> Result<&NodeEntry, ConfigError> {
        self.nodes
            .iter()
            .find(|n| n.id.as_str() == id)
            .ok_or_else(|| {
                let known: Vec<_> = self.nodes.iter().map(|n| n.id.as_str()).collect();
                ConfigError(format!(
                    "{}: no node {id:?} (configured: {})",
                    self.source,
                    known.join(", ")
                ))
            })
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "{}: cannot read the configuration: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests;
