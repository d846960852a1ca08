//! `cluster.toml`: from raw text to the validated [`NodeConfig`] that everything else sees.
//!
//! The file is deserialized into private `Raw*` structs that refuse unknown keys, then checked
//! into [`NodeConfig`]. Every error names the file, the line and the key. Settings can be
//! overridden by CLI flags or `TROUPE_*` environment variables ([`ConfigArgs`]); a value that
//! came from an override is named as such in errors.
//!
//! Which file: `--config PATH` (or `TROUPE_CONFIG`); else `./cluster.toml` if it exists; else the
//! default built into the binary (three nodes on 127.0.0.1). Relative paths in a file are taken
//! from the file's directory; for the built-in default, from the working directory.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use troupe_runtime::cluster::{DetectorSettings, ReconnectSettings};
use troupe_runtime::supervisor::RestartPolicy;
use troupe_runtime::{
    ClusterSettings, NodeId, NodeSpec, RuntimeSettings, ServiceSpec, StoreSettings,
};

mod services;

/// A node's link port defaults to its cluster port plus this.
pub const DEFAULT_LINK_PORT_OFFSET: u16 = 100;

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
        env
    }
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

/// The HTTP edge's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Deadline of one request.
    pub request_timeout: std::time::Duration,
    /// Deadline of a graceful shutdown.
    pub shutdown_grace: std::time::Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: default_body_limit() as usize,
            request_timeout: ms(default_request_timeout_ms()),
            shutdown_grace: ms(default_shutdown_grace_ms()),
        }
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

/// One configured node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// Its id.
    pub id: NodeId,
    /// Its cluster port.
    pub cluster_addr: SocketAddr,
    /// Its HTTP edge.
    pub http_addr: SocketAddr,
    /// Where it accepts service traffic from peers (default: the cluster port + 100).
    pub link_addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
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
}

fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}
fn default_data_dir() -> String {
    "data".into()
}
fn default_heartbeat_interval_ms() -> u64 {
    200
}
fn default_suspect_after_ms() -> u64 {
    1000
}
fn default_down_after_ms() -> u64 {
    2000
}
fn default_reconnect_min_ms() -> u64 {
    50
}
fn default_reconnect_max_ms() -> u64 {
    1000
}
fn default_store_cache_mb() -> u64 {
    64
}
fn default_body_limit() -> u64 {
    64 * 1024
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
fn default_log_level() -> String {
    "info".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    cluster: RawCluster,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    log: RawLog,
    #[serde(default, rename = "node")]
    nodes: Vec<RawNode>,
    #[serde(default)]
    services: BTreeMap<String, services::RawService>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    cookie: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    heartbeat_interval_ms: Option<Spanned<u64>>,
    suspect_after_ms: Option<Spanned<u64>>,
    down_after_ms: Option<Spanned<u64>>,
    reconnect_min_ms: Option<Spanned<u64>>,
    reconnect_max_ms: Option<Spanned<u64>>,
    store_cache_mb: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    body_limit_bytes: Option<Spanned<u64>>,
    request_timeout_ms: Option<Spanned<u64>>,
    shutdown_grace_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<Spanned<String>>,
    format: Option<LogFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<String>,
    cluster_addr: Spanned<String>,
    http_addr: Spanned<String>,
    link_addr: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
}

/// Reports problems with positions in the source text.
pub(crate) struct Checker<'a> {
    source: &'a ConfigSource,
    text: &'a str,
}

impl Checker<'_> {
    pub(crate) fn source_name(&self) -> String {
        self.source.to_string()
    }

    fn line(&self, span: &std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|b| *b == b'\n').count() + 1
    }

    /// An error at `key`; a value with an empty span came from an override.
    fn err<T>(
        &self,
        key: &str,
        at: &std::ops::Range<usize>,
        problem: impl fmt::Display,
    ) -> Result<T, ConfigError> {
        if at.is_empty() {
            Err(ConfigError(format!(
                "{}: {key} (from a command-line flag or TROUPE_* variable): {problem}",
                self.source
            )))
        } else {
            Err(ConfigError(format!(
                "{}:{}: {key}: {problem}",
                self.source,
                self.line(at)
            )))
        }
    }

    fn positive(
        &self,
        key: &str,
        v: &Option<Spanned<u64>>,
        default: u64,
    ) -> Result<Spanned<u64>, ConfigError> {
        let v = v.clone().unwrap_or_else(|| Spanned::new(0..0, default));
        if *v.get_ref() == 0 {
            return self.err(key, &v.span(), "must be greater than 0");
        }
        Ok(v)
    }

    fn addr(&self, key: &str, v: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
        match v.get_ref().parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Ok(a),
            Ok(_) => self.err(
                key,
                &v.span(),
                "port 0 is not allowed: peers must know the port",
            ),
            Err(_) => self.err(
                key,
                &v.span(),
                format!("{:?} is not an IP:port address", v.get_ref()),
            ),
        }
    }
}

fn overridden<T>(value: Option<T>, current: Option<Spanned<T>>) -> Option<Spanned<T>> {
    match value {
        Some(v) => Some(Spanned::new(0..0, v)),
        None => current,
    }
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
        let mut raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError(format!("{source}: {}", e.to_string().trim_end())))?;
        let t = &args.tuning;
        let c = &mut raw.cluster;
        c.heartbeat_interval_ms =
            overridden(t.heartbeat_interval_ms, c.heartbeat_interval_ms.take());
        c.suspect_after_ms = overridden(t.suspect_after_ms, c.suspect_after_ms.take());
        c.down_after_ms = overridden(t.down_after_ms, c.down_after_ms.take());
        c.reconnect_min_ms = overridden(t.reconnect_min_ms, c.reconnect_min_ms.take());
        c.reconnect_max_ms = overridden(t.reconnect_max_ms, c.reconnect_max_ms.take());
        let h = &mut raw.http;
        h.body_limit_bytes = overridden(t.body_limit_bytes, h.body_limit_bytes.take());
        h.request_timeout_ms = overridden(t.request_timeout_ms, h.request_timeout_ms.take());
        h.shutdown_grace_ms = overridden(t.shutdown_grace_ms, h.shutdown_grace_ms.take());
        raw.log.level = overridden(args.log_level.clone(), raw.log.level.take());
        raw.log.format = args.log_format.or(raw.log.format);

        let check = Checker {
            source: &source,
            text,
        };
        let base_dir = match &source {
            ConfigSource::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            ConfigSource::Embedded => PathBuf::new(),
        };
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            }
        };

        let c = &raw.cluster;
        let heartbeat = check.positive(
            "cluster.heartbeat_interval_ms",
            &c.heartbeat_interval_ms,
            default_heartbeat_interval_ms(),
        )?;
        let suspect = check.positive(
            "cluster.suspect_after_ms",
            &c.suspect_after_ms,
            default_suspect_after_ms(),
        )?;
        let down = check.positive(
            "cluster.down_after_ms",
            &c.down_after_ms,
            default_down_after_ms(),
        )?;
        if suspect.get_ref() <= heartbeat.get_ref() {
            return check.err(
                "cluster.suspect_after_ms",
                &suspect.span(),
                "must be greater than heartbeat_interval_ms",
            );
        }
        if down.get_ref() <= suspect.get_ref() {
            return check.err(
                "cluster.down_after_ms",
                &down.span(),
                "must be greater than suspect_after_ms",
            );
        }
        let rmin = check.positive(
            "cluster.reconnect_min_ms",
            &c.reconnect_min_ms,
            default_reconnect_min_ms(),
        )?;
        let rmax = check.positive(
            "cluster.reconnect_max_ms",
            &c.reconnect_max_ms,
            default_reconnect_max_ms(),
        )?;
        if rmax.get_ref() < rmin.get_ref() {
            return check.err(
                "cluster.reconnect_max_ms",
                &rmax.span(),
                "must not be less than reconnect_min_ms",
            );
        }
        let cookie = match &c.cookie {
            Some(cookie) => match troupe_runtime::cluster::check_cookie(cookie.get_ref()) {
                Ok(()) => Some(cookie.get_ref().clone()),
                Err(why) => return check.err("cluster.cookie", &cookie.span(), why),
            },
            None => None,
        };
        let data_dir = match &args.data_dir {
            Some(p) => p.clone(),
            None => resolve(
                c.data_dir
                    .as_ref()
                    .map_or(default_data_dir(), |d| d.get_ref().clone())
                    .as_str(),
            ),
        };

        let h = &raw.http;
        let body_limit = check.positive(
            "http.body_limit_bytes",
            &h.body_limit_bytes,
            default_body_limit(),
        )?;
        let body_limit_bytes = usize::try_from(*body_limit.get_ref()).unwrap_or(usize::MAX);
        let request_timeout = check.positive(
            "http.request_timeout_ms",
            &h.request_timeout_ms,
            default_request_timeout_ms(),
        )?;
        let shutdown_grace = check.positive(
            "http.shutdown_grace_ms",
            &h.shutdown_grace_ms,
            default_shutdown_grace_ms(),
        )?;

        if raw.nodes.is_empty() {
            return Err(ConfigError(format!(
                "{source}: no [[node]] entries: a cluster needs at least one node"
            )));
        }
        let mut nodes: Vec<NodeEntry> = Vec::with_capacity(raw.nodes.len());
        for n in &raw.nodes {
            let id = NodeId::try_new(n.id.get_ref()).or_else(|e| {
                check.err(
                    "node.id",
                    &n.id.span(),
                    e.to_string()
                        .trim_start_matches("invalid cluster settings: "),
                )
            })?;
            let cluster_addr = check.addr("node.cluster_addr", &n.cluster_addr)?;
            let http_addr = check.addr("node.http_addr", &n.http_addr)?;
            let link_addr = match &n.link_addr {
                Some(a) => check.addr("node.link_addr", a)?,
                None => match cluster_addr.port().checked_add(DEFAULT_LINK_PORT_OFFSET) {
                    Some(port) => SocketAddr::new(cluster_addr.ip(), port),
                    None => {
                        return check.err(
                            "node.link_addr",
                            &n.cluster_addr.span(),
                            "cannot default to the cluster port + 100: set link_addr",
                        );
                    }
                },
            };
            let link_span = n
                .link_addr
                .as_ref()
                .map_or_else(|| n.cluster_addr.span(), Spanned::span);
            let mine = [
                ("node.cluster_addr", cluster_addr, n.cluster_addr.span()),
                ("node.http_addr", http_addr, n.http_addr.span()),
                ("node.link_addr", link_addr, link_span),
            ];
            for other in &nodes {
                if other.id == id {
                    return check.err(
                        "node.id",
                        &n.id.span(),
                        format!("{id} is already used by another node"),
                    );
                }
                for (key, addr, span) in &mine {
                    if [other.cluster_addr, other.http_addr, other.link_addr].contains(addr) {
                        return check.err(
                            key,
                            span,
                            format!("{addr} is already used by node {}", other.id),
                        );
                    }
                }
            }
            for (i, (key, addr, span)) in mine.iter().enumerate() {
                if mine[..i].iter().any(|(_, a, _)| a == addr) {
                    return check.err(key, span, format!("{addr} is used twice by this node"));
                }
            }
            let data_dir = match &n.data_dir {
                Some(d) => resolve(d.get_ref()),
                None => data_dir.join(id.as_str()),
            };
            nodes.push(NodeEntry {
                id,
                cluster_addr,
                http_addr,
                link_addr,
                data_dir,
            });
        }
        let node_ids: Vec<NodeId> = nodes.iter().map(|n| n.id.clone()).collect();
        let services = services::check(&check, &raw.services, &node_ids)?;
        let cache_mb = check.positive(
            "cluster.store_cache_mb",
            &raw.cluster.store_cache_mb,
            default_store_cache_mb(),
        )?;
        if *cache_mb.get_ref() > 1024 * 1024 {
            return check.err(
                "cluster.store_cache_mb",
                &cache_mb.span(),
                "at most 1048576 (1 TiB)",
            );
        }

        Ok(Self {
            source,
            cookie,
            data_dir,
            store_cache_bytes: *cache_mb.get_ref() * 1024 * 1024,
            detector: DetectorSettings {
                heartbeat_interval: ms(*heartbeat.get_ref()),
                suspect_after: ms(*suspect.get_ref()),
                down_after: ms(*down.get_ref()),
            },
            reconnect: ReconnectSettings {
                min_backoff: ms(*rmin.get_ref()),
                max_backoff: ms(*rmax.get_ref()),
                ..ReconnectSettings::default()
            },
            http: HttpSettings {
                body_limit_bytes,
                request_timeout: ms(*request_timeout.get_ref()),
                shutdown_grace: ms(*shutdown_grace.get_ref()),
            },
            log: LogSettings {
                level: raw
                    .log
                    .level
                    .map_or_else(default_log_level, Spanned::into_inner),
                format: raw.log.format.unwrap_or_default(),
            },
            nodes,
            services,
        })
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

    /// Everything the runtime of node `id` needs.
    pub fn runtime_settings(
        &self,
        id: &str,
        cookie: String,
    ) -> Result<RuntimeSettings, ConfigError> {
        Ok(RuntimeSettings {
            cluster: self.cluster_settings(id, cookie)?,
            link_addrs: self
                .nodes
                .iter()
                .map(|n| (n.id.clone(), n.link_addr))
                .collect(),
            services: self
                .services
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            restart: RestartPolicy::default(),
            store: Some(StoreSettings {
                path: self.node(id)?.data_dir.join("store"),
                cache_bytes: self.store_cache_bytes,
            }),
        })
    }

    /// The runtime's cluster settings for node `id` with `cookie`.
    pub fn cluster_settings(
        &self,
        id: &str,
        cookie: String,
    ) -> Result<ClusterSettings, ConfigError> {
        let nodes = self
            .nodes
            .iter()
            .map(|n| NodeSpec {
                id: n.id.clone(),
                cluster_addr: n.cluster_addr,
            })
            .collect();
        ClusterSettings::with_timings(id, nodes, cookie, self.detector, self.reconnect)
            .map_err(|e| ConfigError(format!("{}: {e}", self.source)))
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
