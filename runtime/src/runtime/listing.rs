//! Listing the entities of a type across its shards, in id order: a paged, consistent read
//! of what every shard holds (each shard answers once what it lists is durable).

use tokio::task::JoinSet;

use super::Runtime;
use crate::entity::admin::{ListStates, STATES, States};
use crate::entity::{Entity, EntityId, admin};
use crate::service::{CallError, decode, encode};

/// The most entities one listing returns.
pub const MAX_LISTED: usize = 1000;

impl Runtime {
    /// Up to `limit` (at most [`MAX_LISTED`]) entities of type `E`, with their ids, whose ids come after
    /// `after` (by [`EntityId::key`] bytes; for UUID ids, their text order), in that order.
    /// Every shard is asked at once; a shard that cannot answer fails the listing (nothing
    /// is skipped silently). Cost: one call per shard per page.
    pub async fn list<E: Entity>(
        &self,
        after: Option<&E::Id>,
        limit: usize,
    ) -> Result<Vec<(E::Id, E::State)>, CallError> {
        let (listed, failed) = self.list_from::<E>(after, limit).await?;
        match failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(listed),
        }
    }

    /// As [`Runtime::list`], from the shards that answer: a shard that cannot (its node is
    /// down) is named with its error instead of failing the listing. For operators, who
    /// need to see what they can while part of the cluster is down.
    pub async fn list_available<E: Entity>(
        &self,
        after: Option<&E::Id>,
        limit: usize,
    ) -> Result<(Vec<(E::Id, E::State)>, Vec<(u32, CallError)>), CallError> {
        self.list_from::<E>(after, limit).await
    }

    async fn list_from<E: Entity>(
        &self,
        after: Option<&E::Id>,
        limit: usize,
    ) -> Result<(Vec<(E::Id, E::State)>, Vec<(u32, CallError)>), CallError> {
        let shards = self.shard_map(E::NAME).len() as u32;
        if shards == 0 {
            return Err(CallError::UnknownService(E::NAME.to_string()));
        }
        let limit = limit.clamp(1, MAX_LISTED);
        let payload = encode(&ListStates {
            after: after.map(EntityId::key),
            limit,
        })?;
        let mut asks = JoinSet::new();
        for shard in 0..shards {
            let runtime = self.clone();
            let request = admin::request(STATES, payload.clone());
            asks.spawn(async move {
                let answer = runtime.ask_shard(E::NAME, shard, &request).await;
                (shard, answer.and_then(|a| decode::<States>(&a)))
            });
        }
        let mut entries = Vec::new();
        // A shard that stopped early may hold more after its last key: nothing past the
        // lowest such key is certain to be in order yet.
        let mut frontier: Option<Vec<u8>> = None;
        let mut failed = Vec::new();
        while let Some(joined) = asks.join_next().await {
            let (shard, answer) =
                joined.map_err(|e| CallError::BadMessage(format!("listing: {e}")))?;
            let states = match answer {
                Ok(states) => states,
                Err(e) => {
                    failed.push((shard, e));
                    continue;
                }
            };
            if states.truncated
                && let Some((last, _)) = states.entries.last()
                && frontier.as_ref().is_none_or(|f| last < f)
            {
                frontier = Some(last.clone());
            }
            entries.extend(states.entries);
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        failed.sort_by_key(|(shard, _)| *shard);
        let listed = entries
            .into_iter()
            .filter(|(key, _)| frontier.as_ref().is_none_or(|f| key <= f))
            .take(limit)
            .map(|(key, state)| {
                let id = E::Id::from_key(&key).ok_or_else(|| {
                    CallError::BadMessage(format!("{}: a stored key is not an id", E::NAME))
                })?;
                Ok((id, decode::<E::State>(&state)?))
            })
            .collect::<Result<Vec<_>, CallError>>()?;
        Ok((listed, failed))
    }
}
