//! From the validated configuration to the settings the runtime of one node starts with.

use troupe_runtime::supervisor::RestartPolicy;
use troupe_runtime::{ClusterSettings, NodeSpec, RuntimeSettings, StoreSettings};

use super::{ConfigError, NodeConfig};

impl NodeConfig {
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
            event_max_attempts: self.event_max_attempts,
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
