//! `probe` and `probe-tally`: the built-in pair that shows the event bus at work, end to end,
//! on a real cluster (its failure tests and `troupe bench` drive it).
//!
//! A probe entity counts: each [`Emit`] raises its number by one and publishes
//! `probe.emitted` with the new number, in the same batch. The `probe-tally` subscription
//! delivers each event to the tally of the same key, which counts what it applied and whether
//! each number came right after the one before. After any number of crashes, every committed
//! number is applied exactly once and in order: a tally's `applied` equals its probe's
//! number, `last` equals it too, and `out_of_order` stays 0.
//!
//! Both are sharded services, hosted when configured (`[services.probe]` and
//! `[services.probe-tally]` with `shards`).

use serde::{Deserialize, Serialize};

use crate::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};
use crate::events::Event;

/// The topic probes publish on.
pub const TOPIC: &str = "probe.emitted";
/// The subscription that feeds the tallies.
pub const SUBSCRIPTION: &str = "probe-tally";
/// The longest probe key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// What a probe or a tally refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProbeError {
    /// The key is empty or too long.
    #[error("key: 1 to {MAX_KEY_BYTES} bytes")]
    BadKey,
}

impl DomainError for ProbeError {
    fn kind(&self) -> DomainKind {
        DomainKind::InvalidInput
    }
}

/// A counter that publishes each of its numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Probe;

impl Entity for Probe {
    const NAME: &'static str = "probe";
    type Id = String;
    type State = u64;
    type Error = ProbeError;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Emit>().add::<Emitted>();
    }
}

/// What a probe publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emission {
    /// The probe's key.
    pub key: String,
    /// Its new number.
    pub n: u64,
}

/// Raise the number by one and publish it: answers the new number, once durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emit;

impl Command<Probe> for Emit {
    const NAME: &'static str = "emit";
    type Reply = u64;
    fn handle(self, cx: &mut Context<'_, Probe>) -> Result<u64, ProbeError> {
        let key = cx.id().clone();
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(ProbeError::BadKey);
        }
        let n = cx.state().copied().unwrap_or(0) + 1;
        cx.set(n);
        cx.publish(TOPIC, &Emission { key, n });
        Ok(n)
    }
}

/// The probe's number (0 if it never emitted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emitted;

impl Command<Probe> for Emitted {
    const NAME: &'static str = "emitted";
    const IDEMPOTENT: bool = true;
    type Reply = u64;
    fn handle(self, cx: &mut Context<'_, Probe>) -> Result<u64, ProbeError> {
        Ok(cx.state().copied().unwrap_or(0))
    }
}

/// What a tally saw of its probe's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events applied.
    pub applied: u64,
    /// The number of the last one.
    pub last: u64,
    /// Events whose number did not come right after the last one.
    pub out_of_order: u64,
}

/// The subscriber: counts the events of the probe with the same key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally;

impl Entity for Tally {
    const NAME: &'static str = "probe-tally";
    type Id = String;
    type State = Counts;
    type Error = ProbeError;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Apply>().add::<Read>();
    }
}

/// One event, delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Apply(pub Emission);

impl Command<Tally> for Apply {
    const NAME: &'static str = "apply";
    type Reply = ();
    fn handle(self, cx: &mut Context<'_, Tally>) -> Result<(), ProbeError> {
        let mut counts = cx.state().copied().unwrap_or_default();
        counts.applied += 1;
        if self.0.n != counts.last + 1 {
            counts.out_of_order += 1;
        }
        counts.last = self.0.n;
        cx.set(counts);
        Ok(())
    }
}

/// The tally's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read;

impl Command<Tally> for Read {
    const NAME: &'static str = "read";
    const IDEMPOTENT: bool = true;
    type Reply = Counts;
    fn handle(self, cx: &mut Context<'_, Tally>) -> Result<Counts, ProbeError> {
        Ok(cx.state().copied().unwrap_or_default())
    }
}

/// The subscription's mapping: each emission to the tally of its key.
pub fn to_tally(event: &Event) -> Option<(String, Apply)> {
    let emission: Emission = event.decode().ok()?;
    Some((emission.key.clone(), Apply(emission)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::entity::testing::Harness;

    #[tokio::test]
    async fn a_probe_numbers_and_publishes_and_a_tally_counts_in_order() {
        let probes = Harness::<Probe>::new().await.unwrap();
        assert_eq!(probes.ask("a".into(), Emit).await, Ok(1));
        assert_eq!(probes.ask("a".into(), Emit).await, Ok(2));
        assert_eq!(
            probes.ask(String::new(), Emit).await,
            Err(crate::entity::AskError::Domain(ProbeError::BadKey))
        );
        let outbox = probes.outbox().unwrap();
        assert_eq!(outbox.len(), 2);
        assert!(outbox.iter().all(|r| r.topic == TOPIC));

        let tallies = Harness::<Tally>::new().await.unwrap();
        for n in [1, 2, 4] {
            tallies
                .ask("a".into(), Apply(Emission { key: "a".into(), n }))
                .await
                .unwrap();
        }
        assert_eq!(
            tallies.ask("a".into(), Read).await,
            Ok(Counts {
                applied: 3,
                last: 4,
                out_of_order: 1
            })
        );
    }
}
