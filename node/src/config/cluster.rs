//! `[cluster]`: the cookie, where data lives, the failure detector's and the reconnect
//! timings, and the store's cache.
//!
//! ```toml
//! [cluster]
//! data_dir = "data"             # each node's data: <data_dir>/<node id> unless its entry says
//! heartbeat_interval_ms = 200   # < suspect_after_ms < down_after_ms
//! suspect_after_ms = 1000
//! down_after_ms = 2000
//! reconnect_min_ms = 50         # <= reconnect_max_ms
//! reconnect_max_ms = 1000
//! store_cache_mb = 64           # 1..=1048576
//! # cookie = "..."              # better: TROUPE_COOKIE, or the generated one (see `secrets`)
//! ```

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;
use troupe_runtime::cluster::{DetectorSettings, ReconnectSettings};

use super::check::{Checker, override_with, unwritten};
use super::{ConfigError, Tuning, ms};

/// The largest `store_cache_mb`: 1 TiB.
const MAX_STORE_CACHE_MB: u64 = 1024 * 1024;

fn default_data_dir() -> String {
    "data".into()
}
fn default_heartbeat_interval_ms() -> Spanned<u64> {
    unwritten(200)
}
fn default_suspect_after_ms() -> Spanned<u64> {
    unwritten(1000)
}
fn default_down_after_ms() -> Spanned<u64> {
    unwritten(2000)
}
fn default_reconnect_min_ms() -> Spanned<u64> {
    unwritten(50)
}
fn default_reconnect_max_ms() -> Spanned<u64> {
    unwritten(1000)
}
fn default_store_cache_mb() -> Spanned<u64> {
    unwritten(64)
}

/// `[cluster]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    cookie: Option<Spanned<String>>,
    #[serde(default = "default_data_dir")]
    data_dir: String,
    #[serde(default = "default_heartbeat_interval_ms")]
    heartbeat_interval_ms: Spanned<u64>,
    #[serde(default = "default_suspect_after_ms")]
    suspect_after_ms: Spanned<u64>,
    #[serde(default = "default_down_after_ms")]
    down_after_ms: Spanned<u64>,
    #[serde(default = "default_reconnect_min_ms")]
    reconnect_min_ms: Spanned<u64>,
    #[serde(default = "default_reconnect_max_ms")]
    reconnect_max_ms: Spanned<u64>,
    #[serde(default = "default_store_cache_mb")]
    store_cache_mb: Spanned<u64>,
}

impl Default for RawCluster {
    fn default() -> Self {
        Self {
            cookie: None,
            data_dir: default_data_dir(),
            heartbeat_interval_ms: default_heartbeat_interval_ms(),
            suspect_after_ms: default_suspect_after_ms(),
            down_after_ms: default_down_after_ms(),
            reconnect_min_ms: default_reconnect_min_ms(),
            reconnect_max_ms: default_reconnect_max_ms(),
            store_cache_mb: default_store_cache_mb(),
        }
    }
}

/// `[cluster]`, validated (but for the store's cache: see [`RawCluster::store_cache_bytes`]).
pub(super) struct ClusterSection {
    pub(super) cookie: Option<String>,
    pub(super) data_dir: PathBuf,
    pub(super) detector: DetectorSettings,
    pub(super) reconnect: ReconnectSettings,
}

impl RawCluster {
    /// Applies the command line's or the environment's overrides.
    pub(super) fn override_with(&mut self, tuning: &Tuning) {
        override_with(
            &mut self.heartbeat_interval_ms,
            tuning.heartbeat_interval_ms,
        );
        override_with(&mut self.suspect_after_ms, tuning.suspect_after_ms);
        override_with(&mut self.down_after_ms, tuning.down_after_ms);
        override_with(&mut self.reconnect_min_ms, tuning.reconnect_min_ms);
        override_with(&mut self.reconnect_max_ms, tuning.reconnect_max_ms);
    }

    /// The validated section; `data_dir_override` (from `--data-dir`) wins over the file's.
    pub(super) fn build_and_validate(
        &self,
        check: &Checker<'_>,
        data_dir_override: Option<&PathBuf>,
    ) -> Result<ClusterSection, ConfigError> {
        let detector = self.detector(check)?;
        let reconnect = self.reconnect(check)?;
        let cookie = match &self.cookie {
            Some(cookie) => match troupe_runtime::cluster::check_cookie(cookie.get_ref()) {
                Ok(()) => Some(cookie.get_ref().clone()),
                Err(why) => return check.err("cluster.cookie", &cookie.span(), why),
            },
            None => None,
        };
        let data_dir = match data_dir_override {
            Some(p) => p.clone(),
            None => check.resolve(&self.data_dir),
        };
        Ok(ClusterSection {
            cookie,
            data_dir,
            detector,
            reconnect,
        })
    }

    /// Heartbeats come more often than a peer is suspected, which comes before it is down.
    fn detector(&self, check: &Checker<'_>) -> Result<DetectorSettings, ConfigError> {
        let heartbeat =
            check.positive("cluster.heartbeat_interval_ms", &self.heartbeat_interval_ms)?;
        let suspect = check.positive("cluster.suspect_after_ms", &self.suspect_after_ms)?;
        let down = check.positive("cluster.down_after_ms", &self.down_after_ms)?;
        if suspect <= heartbeat {
            return check.err(
                "cluster.suspect_after_ms",
                &self.suspect_after_ms.span(),
                "must be greater than heartbeat_interval_ms",
            );
        }
        if down <= suspect {
            return check.err(
                "cluster.down_after_ms",
                &self.down_after_ms.span(),
                "must be greater than suspect_after_ms",
            );
        }
        Ok(DetectorSettings {
            heartbeat_interval: ms(heartbeat),
            suspect_after: ms(suspect),
            down_after: ms(down),
        })
    }

    fn reconnect(&self, check: &Checker<'_>) -> Result<ReconnectSettings, ConfigError> {
        let min = check.positive("cluster.reconnect_min_ms", &self.reconnect_min_ms)?;
        let max = check.positive("cluster.reconnect_max_ms", &self.reconnect_max_ms)?;
        if max < min {
            return check.err(
                "cluster.reconnect_max_ms",
                &self.reconnect_max_ms.span(),
                "must not be less than reconnect_min_ms",
            );
        }
        Ok(ReconnectSettings {
            min_backoff: ms(min),
            max_backoff: ms(max),
            ..ReconnectSettings::default()
        })
    }

    /// Each node's store cache, in bytes. Checked after the nodes and services, as it always
    /// was, so that a file with several mistakes still reports the same one first.
    pub(super) fn store_cache_bytes(&self, check: &Checker<'_>) -> Result<u64, ConfigError> {
        let mb = check.positive("cluster.store_cache_mb", &self.store_cache_mb)?;
        if mb > MAX_STORE_CACHE_MB {
            return check.err(
                "cluster.store_cache_mb",
                &self.store_cache_mb.span(),
                "at most 1048576 (1 TiB)",
            );
        }
        Ok(mb * 1024 * 1024)
    }
}
