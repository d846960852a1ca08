//! Balancers: which member gets a request. Pure functions over the candidates, behind one
//! trait, so that their distribution and stability are tested without actors or sockets.
//!
//! - [`RoundRobin`]: each member in turn.
//! - [`LeastOutstanding`]: power of two choices: of two members drawn at random, the one with
//!   fewer requests in flight from this sender (Mitzenmacher; as in Finagle and linkerd).
//! - [`KeyAffinity`]: rendezvous (highest random weight) hashing of the request's key over the
//!   members' stable identities (node, slot): the same key goes to the same member while it is
//!   alive, and when it dies only its keys move.

use serde::{Deserialize, Serialize};

use crate::hash::{mix, stable_hash};

/// One member a request may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// A stable identity of the member (its node and slot, hashed): the same across restarts.
    pub identity: u64,
    /// Requests this sender has in flight to it.
    pub outstanding: usize,
}

impl Candidate {
    /// The identity of slot `index` of a service on node `node`.
    pub fn identity_of(node: &str, index: u32) -> u64 {
        mix(stable_hash(node.as_bytes()) ^ mix(u64::from(index) + 1))
    }
}

/// What a pick may depend on besides the candidates.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickInput {
    /// A counter that advances by one per pick (round robin).
    pub counter: u64,
    /// Two random draws (power of two choices).
    pub random: [u64; 2],
    /// The request's key (key affinity); a balancer that needs one falls back to round robin.
    pub key: Option<u64>,
}

/// Chooses a candidate. Returns an index into `candidates`, or `None` if it is empty.
pub trait Balancer {
    /// The pick.
    fn pick(&self, candidates: &[Candidate], input: &PickInput) -> Option<usize>;
}

/// Each member in turn.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobin;

impl Balancer for RoundRobin {
    fn pick(&self, candidates: &[Candidate], input: &PickInput) -> Option<usize> {
        match candidates.len() {
            0 => None,
            // No division for the common single-member case.
            1 => Some(0),
            n => Some((input.counter % n as u64) as usize),
        }
    }
}

/// Power of two choices on requests in flight.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastOutstanding;

impl Balancer for LeastOutstanding {
    fn pick(&self, candidates: &[Candidate], input: &PickInput) -> Option<usize> {
        let n = candidates.len() as u64;
        match n {
            0 => None,
            1 => Some(0),
            _ => {
                let a = (input.random[0] % n) as usize;
                // A second draw distinct from the first.
                let b = ((a as u64 + 1 + input.random[1] % (n - 1)) % n) as usize;
                Some(if candidates[b].outstanding < candidates[a].outstanding {
                    b
                } else {
                    a
                })
            }
        }
    }
}

/// Rendezvous hashing of the request key.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyAffinity;

impl Balancer for KeyAffinity {
    fn pick(&self, candidates: &[Candidate], input: &PickInput) -> Option<usize> {
        let Some(key) = input.key else {
            return RoundRobin.pick(candidates, input);
        };
        rendezvous(key, candidates.iter().map(|c| c.identity))
    }
}

/// The index of the identity with the highest weight for `key`.
pub fn rendezvous(key: u64, identities: impl Iterator<Item = u64>) -> Option<usize> {
    identities
        .enumerate()
        .max_by_key(|(_, id)| (mix(key ^ mix(*id)), *id))
        .map(|(i, _)| i)
}

/// The balancer a service is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// [`RoundRobin`].
    #[default]
    RoundRobin,
    /// [`LeastOutstanding`].
    LeastOutstanding,
    /// [`KeyAffinity`].
    KeyAffinity,
}

impl Balancer for Balance {
    fn pick(&self, candidates: &[Candidate], input: &PickInput) -> Option<usize> {
        match self {
            Self::RoundRobin => RoundRobin.pick(candidates, input),
            Self::LeastOutstanding => LeastOutstanding.pick(candidates, input),
            Self::KeyAffinity => KeyAffinity.pick(candidates, input),
        }
    }
}

#[cfg(test)]
mod tests;
