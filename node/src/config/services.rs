//! `[services.<name>]`: where each service runs and how its members are picked.
//!
//! ```toml
//! [services.echo]
//! members_per_node = 2          # 1..=1024
//! nodes = ["n1", "n2", "n3"]    # default: every node
//! balance = "round_robin"       # round_robin | least_outstanding | key_affinity
//! prefer_local = false          # send to members on the sender's node when there are any
//! mailbox_capacity = 4096       # queued messages per member before senders wait
//! ```
//!
//! A sharded (stateful) service has `shards = N` (1..=4096) instead of `members_per_node`: its
//! shards are spread over its nodes by rendezvous hashing, each owning a keyspace on its
//! node's disk.
//!
//! `echo` and `kv` are built in: `echo` runs on every node with the defaults, and `kv` with
//! 16 shards over every node, unless configured otherwise.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use troupe_runtime::registry::balance::Balance;
use troupe_runtime::{NodeId, ServiceSpec};

use super::ConfigError;
use super::check::Checker;

/// `kv`'s shards unless configured.
pub(crate) const DEFAULT_KV_SHARDS: u32 = 16;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    members_per_node: Option<Spanned<u32>>,
    shards: Option<Spanned<u32>>,
    nodes: Option<Spanned<Vec<String>>>,
    balance: Option<Balance>,
    prefer_local: Option<bool>,
    mailbox_capacity: Option<Spanned<usize>>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Every service, validated, with the built-in `echo` and `kv` added unless configured.
pub(super) fn build_and_validate(
    check: &Checker<'_>,
    raw: &BTreeMap<String, RawService>,
    nodes: &[NodeId],
) -> Result<BTreeMap<String, ServiceSpec>, ConfigError> {
    let mut specs = BTreeMap::new();
    for (name, service) in raw {
        specs.insert(
            name.clone(),
            service.build_and_validate(check, name, nodes)?,
        );
    }
    specs.entry("echo".to_string()).or_default();
    specs
        .entry("kv".to_string())
        .or_insert_with(|| ServiceSpec {
            shards: Some(DEFAULT_KV_SHARDS),
            ..ServiceSpec::default()
        });
    if specs.get("kv").is_some_and(|kv| kv.shards.is_none()) {
        return Err(check.whole("[services.kv]: kv is sharded: it needs `shards`"));
    }
    Ok(specs)
}

impl RawService {
    /// `[services.<name>]`, validated against the configured `nodes`.
    fn build_and_validate(
        &self,
        check: &Checker<'_>,
        name: &str,
        nodes: &[NodeId],
    ) -> Result<ServiceSpec, ConfigError> {
        if !valid_name(name) {
            return Err(check.whole(format!(
                "[services.{name}]: a service name is 1 to 64 characters of a-z, 0-9, '-' and '_'"
            )));
        }
        let defaults = ServiceSpec::default();
        let key = |field: &str| format!("services.{name}.{field}");
        let members_per_node = bounded(
            check,
            &key("members_per_node"),
            &self.members_per_node,
            1024,
        )?
        .unwrap_or(defaults.members_per_node);
        let mailbox_capacity = bounded(
            check,
            &key("mailbox_capacity"),
            &self.mailbox_capacity,
            1_000_000,
        )?
        .unwrap_or(defaults.mailbox_capacity);
        let hosts = match &self.nodes {
            Some(list) => Some(hosts(check, &key("nodes"), list, nodes)?),
            None => None,
        };
        let shards = bounded(check, &key("shards"), &self.shards, 4096)?;
        if let (Some(_), Some(m)) = (shards, &self.members_per_node) {
            return check.err(
                &key("members_per_node"),
                &m.span(),
                "does not apply to a sharded service (its members are its shards)",
            );
        }
        Ok(ServiceSpec {
            members_per_node,
            nodes: hosts,
            balance: self.balance.unwrap_or(defaults.balance),
            prefer_local: self.prefer_local.unwrap_or(defaults.prefer_local),
            mailbox_capacity,
            shards,
        })
    }
}

/// The nodes `list` names: at least one, each configured and named once.
fn hosts(
    check: &Checker<'_>,
    key: &str,
    list: &Spanned<Vec<String>>,
    nodes: &[NodeId],
) -> Result<Vec<NodeId>, ConfigError> {
    let mut ids = Vec::new();
    for id in list.get_ref() {
        match nodes.iter().find(|n| n.as_str() == id) {
            Some(n) if !ids.contains(n) => ids.push(n.clone()),
            Some(_) => return check.err(key, &list.span(), format!("{id} is listed twice")),
            None => {
                return check.err(key, &list.span(), format!("{id} is not a configured node"));
            }
        }
    }
    if ids.is_empty() {
        return check.err(key, &list.span(), "must name at least one node");
    }
    Ok(ids)
}

/// The value of an optional setting that must be between 1 and `max`.
fn bounded<T>(
    check: &Checker<'_>,
    key: &str,
    value: &Option<Spanned<T>>,
    max: T,
) -> Result<Option<T>, ConfigError>
where
    T: Copy + PartialOrd + From<u8> + std::fmt::Display,
{
    match value {
        Some(v) if !(T::from(1)..=max).contains(v.get_ref()) => {
            check.err(key, &v.span(), format!("must be between 1 and {max}"))
        }
        Some(v) => Ok(Some(*v.get_ref())),
        None => Ok(None),
    }
}
