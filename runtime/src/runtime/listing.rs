//! Listing the entities of a type across its shards, in id order: a paged, consistent read
//! of what every shard holds (each shard answers once what it lists is durable).
//!
//! Every shard is asked at once for a share of the page (a little more than `limit / shards`),
//! so a page costs about `limit` entities read, not `limit` per shard. A shard that answered a
//! full share (or stopped at its byte budget) may hold more after its last key: the page ends
//! at the lowest such key, so nothing is skipped, and says there is more.

use tokio::task::JoinSet;

use super::Runtime;
use crate::entity::admin::{ListStates, STATES, States};
use crate::entity::{Entity, EntityId, admin};
use crate::service::{CallError, decode, encode};

/// The most entities one listing returns.
pub const MAX_LISTED: usize = 1000;

/// One page of a listing.
#[derive(Debug)]
pub struct ListPage<E: Entity> {
    /// The entities, with their ids, in id order (at most the limit asked; possibly fewer
    /// even when there are more: see `more`).
    pub entries: Vec<(E::Id, E::State)>,
    /// Whether entities may follow the last one (continue after it).
    pub more: bool,
    /// The shards that could not answer (their node is down), with why: their entities are
    /// not in the page.
    pub unavailable: Vec<(u32, CallError)>,
}

impl Runtime {
    /// Up to `limit` (at most [`MAX_LISTED`]) entities of type `E`, with their ids, whose ids
    /// come after `after` (by [`EntityId::key`] bytes; for UUID ids, their text order), in
    /// that order; an empty page when there are no more. A shard that cannot answer fails
    /// the listing (nothing is skipped silently).
    pub async fn list<E: Entity>(
        &self,
        after: Option<&E::Id>,
        limit: usize,
    ) -> Result<Vec<(E::Id, E::State)>, CallError> {
        let page = self.list_page::<E>(after, limit).await?;
        match page.unavailable.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(page.entries),
        }
    }

    /// One page of the listing of `E` after `after`: see [`ListPage`]. A shard that cannot
    /// answer is named instead of failing the page (operators need to see what they can while
    /// part of the cluster is down); callers that must not skip anything check `unavailable`.
    pub async fn list_page<E: Entity>(
        &self,
        after: Option<&E::Id>,
        limit: usize,
    ) -> Result<ListPage<E>, CallError> {
        let shards = self.shard_map(E::NAME).len();
        if shards == 0 {
            return Err(CallError::UnknownService(E::NAME.to_string()));
        }
        let limit = limit.clamp(1, MAX_LISTED);
        let share = limit.div_ceil(shards) + 1;
        let payload = encode(&ListStates {
            after: after.map(EntityId::key),
            limit: share,
        })?;
        let mut asks = JoinSet::new();
        for shard in 0..shards as u32 {
            let runtime = self.clone();
            let request = admin::request(STATES, payload.clone());
            asks.spawn(async move {
                let answer = runtime.ask_shard(E::NAME, shard, &request).await;
                (shard, answer.and_then(|a| decode::<States>(&a)))
            });
        }
        let mut entries = Vec::new();
        // A shard that answered a full share, or stopped at its byte budget, may hold more
        // after its last key: nothing past the lowest such key is certain to be in order yet.
        let mut frontier: Option<Vec<u8>> = None;
        let mut unavailable = Vec::new();
        while let Some(joined) = asks.join_next().await {
            let (shard, answer) =
                joined.map_err(|e| CallError::BadMessage(format!("listing: {e}")))?;
            let states = match answer {
                Ok(states) => states,
                Err(e) => {
                    unavailable.push((shard, e));
                    continue;
                }
            };
            let full = states.truncated || states.entries.len() >= share;
            if full
                && let Some((last, _)) = states.entries.last()
                && frontier.as_ref().is_none_or(|f| last < f)
            {
                frontier = Some(last.clone());
            }
            entries.extend(states.entries);
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        unavailable.sort_by_key(|(shard, _)| *shard);
        let read = entries.len();
        let kept: Vec<_> = entries
            .into_iter()
            .filter(|(key, _)| frontier.as_ref().is_none_or(|f| key <= f))
            .take(limit)
            .collect();
        let more = frontier.is_some() || kept.len() < read;
        let entries = kept
            .into_iter()
            .map(|(key, state)| {
                let id = E::Id::from_key(&key).ok_or_else(|| {
                    CallError::BadMessage(format!("{}: a stored key is not an id", E::NAME))
                })?;
                Ok((id, decode::<E::State>(&state)?))
            })
            .collect::<Result<Vec<_>, CallError>>()?;
        Ok(ListPage {
            entries,
            more,
            unavailable,
        })
    }
}
