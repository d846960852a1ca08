//! What an operator asks of a shard itself rather than of one of its entities: its dead
//! letters, and sending one back to its subscription.

use serde::{Deserialize, Serialize};

use super::super::effects::{self, OutboxRecord};
use super::super::relay::{DEAD_PREFIX, DeadLetter, dead_key};
use super::super::{STATE_PREFIX, state_key};
use super::{EntityRequest, EntityResponse, Failure, Shard};
use crate::service::{RequestContext, decode, encode};
use crate::store::{StoreError, WriteBatch};

/// The prefix of the commands a shard answers itself.
pub(crate) const PREFIX: &str = "troupe.";
/// Lists the shard's dead letters (payload: nothing; reply: `Vec<DeadLetter>`).
pub(crate) const DEAD_LETTERS: &str = "troupe.dead-letters";
/// Sends a dead letter back to its subscription (payload: [`Redrive`]; reply: whether it was
/// there).
pub(crate) const REDRIVE: &str = "troupe.redrive";

/// Lists the shard's entities in key order (payload: [`ListStates`]; reply: [`States`]).
pub(crate) const STATES: &str = "troupe.states";

/// The most encoded state bytes one listing of states returns (past the first entity).
pub(crate) const MAX_STATE_BYTES: usize = 512 * 1024;

/// Which entities to list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ListStates {
    /// The key of the entity to list after (exclusive), if any.
    pub(crate) after: Option<Vec<u8>>,
    /// How many at most.
    pub(crate) limit: usize,
}

/// Entities of one shard in key order: (id key, encoded state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct States {
    pub(crate) entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether the listing stopped at [`MAX_STATE_BYTES`] before `limit`: the shard may hold
    /// more entities after the last one listed.
    pub(crate) truncated: bool,
}

/// The most dead letters one listing returns.
pub(crate) const MAX_LISTED: usize = 1000;

/// Which dead letter to send again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Redrive {
    pub(crate) subscription: String,
    pub(crate) seq: u64,
}

/// A request for the shard itself.
pub(crate) fn request(command: &str, payload: Vec<u8>) -> EntityRequest {
    EntityRequest {
        command: command.to_string(),
        id: Vec::new(),
        payload,
        timer: None,
        event: None,
    }
}

impl Shard {
    /// Answers a command for the shard itself.
    pub(super) fn admin(
        &mut self,
        request: &EntityRequest,
        rcx: &RequestContext<'_>,
    ) -> EntityResponse {
        let store = |e: StoreError| Failure::Store(e.to_string());
        let malformed = |e: crate::CallError| Failure::Malformed(e.to_string());
        match request.command.as_str() {
            DEAD_LETTERS => {
                let letters: Vec<DeadLetter> = self
                    .keyspace
                    .scan::<DeadLetter>(DEAD_PREFIX, None, MAX_LISTED)
                    .map_err(store)?
                    .into_iter()
                    .map(|(_, letter)| letter)
                    .collect();
                rcx.reply_when_durable(self.keyspace.seen(DEAD_PREFIX));
                encode(&letters).map_err(malformed)
            }
            REDRIVE => {
                let wanted: Redrive = decode(&request.payload).map_err(malformed)?;
                let key = dead_key(&wanted.subscription, wanted.seq);
                let Some(letter) = self.keyspace.get::<DeadLetter>(&key).map_err(store)? else {
                    rcx.reply_when_durable(self.keyspace.seen(&key));
                    return encode(&false).map_err(malformed);
                };
                // Published again for that subscription only, under a new number; the
                // subscriber applies it once by its event id.
                let record = OutboxRecord {
                    only: Some(wanted.subscription),
                    ..letter.event
                };
                let seq = self.next_outbox;
                self.next_outbox += 1;
                self.keyspace.note_sequence(self.next_outbox);
                let outbox = effects::outbox_key(&record.key, seq);
                let mut batch = WriteBatch::new();
                batch.put(&outbox, &record).map_err(store)?;
                batch.delete(&key);
                let durable = self.keyspace.apply(batch).map_err(store)?;
                if let Some(relay) = &self.relay {
                    relay.inbox().push(vec![(outbox, record)]);
                    let inbox = std::sync::Arc::clone(relay.inbox());
                    let below = self.next_outbox;
                    rcx.when_durable(Box::new(move || inbox.durable_below(below)));
                }
                rcx.reply_when_durable(durable);
                encode(&true).map_err(malformed)
            }
            STATES => {
                let wanted: ListStates = decode(&request.payload).map_err(malformed)?;
                let states = self.states(&wanted).map_err(store)?;
                rcx.reply_when_durable(self.keyspace.seen(STATE_PREFIX));
                encode(&states).map_err(malformed)
            }
            other => Err(Failure::UnknownCommand(other.to_string())),
        }
    }
}

impl Shard {
    /// Up to `wanted.limit` entities after `wanted.after`, stopping early past
    /// [`MAX_STATE_BYTES`].
    fn states(&self, wanted: &ListStates) -> Result<States, StoreError> {
        let after = wanted.after.as_deref().map(state_key);
        let limit = wanted.limit.min(MAX_LISTED);
        let mut states = States {
            entries: Vec::new(),
            truncated: false,
        };
        let mut bytes = 0;
        let mut cursor = after;
        while states.entries.len() < limit {
            let page = self.keyspace.scan_raw(
                STATE_PREFIX,
                cursor.as_deref(),
                limit - states.entries.len(),
            )?;
            let Some((last, _)) = page.last() else {
                break;
            };
            cursor = Some(last.clone());
            for (key, state) in page {
                if bytes > 0 && bytes + state.len() > MAX_STATE_BYTES {
                    states.truncated = true;
                    return Ok(states);
                }
                bytes += state.len();
                states
                    .entries
                    .push((key[STATE_PREFIX.len()..].to_vec(), state));
            }
        }
        Ok(states)
    }
}
