//! The caller's side of entities: [`EntityRef`], an entity's address, and [`AskError`].

use std::marker::PhantomData;

use tokio::time::Duration;

use super::service::{EntityRequest, EntityService, Failure};
use super::{Command, DomainError, Entity, EntityId};
use crate::router::Router;
use crate::service::{CallError, CallOptions, decode};

/// How an ask fails: the entity's own refusal, or the call's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError<D> {
    /// The entity refused the command; nothing changed.
    #[error("{0}")]
    Domain(D),
    /// The call failed (see [`CallError`] for what the caller may assume).
    #[error("{0}")]
    Call(#[from] CallError),
    /// The shard's store refused to read or write (a damaged keyspace, a full disk): nothing
    /// was applied.
    #[error("{0}")]
    Store(String),
}

impl<D: DomainError> AskError<D> {
    /// The domain error, if that is what it is.
    pub fn domain(&self) -> Option<&D> {
        match self {
            Self::Domain(d) => Some(d),
            Self::Call(_) | Self::Store(_) => None,
        }
    }
}

/// The address of one entity: every command to it goes to its shard.
pub struct EntityRef<E: Entity> {
    router: Router<EntityService<E>>,
    id: E::Id,
    timeout: Duration,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> Clone for EntityRef<E> {
    fn clone(&self) -> Self {
        Self {
            router: self.router.clone(),
            id: self.id.clone(),
            timeout: self.timeout,
            _entity: PhantomData,
        }
    }
}

impl<E: Entity> std::fmt::Debug for EntityRef<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EntityRef({}/{})", E::NAME, self.id)
    }
}

impl<E: Entity> EntityRef<E> {
    pub(crate) fn new(router: Router<EntityService<E>>, id: E::Id) -> Self {
        Self {
            router,
            id,
            timeout: E::TIMEOUT,
            _entity: PhantomData,
        }
    }

    /// The entity's id.
    pub fn id(&self) -> &E::Id {
        &self.id
    }

    /// This address with another deadline for its asks (default [`Entity::TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn request<C: Command<E>>(&self, command: &C) -> Result<EntityRequest, CallError> {
        EntityRequest::new::<E, C>(&self.id, command, None)
    }

    /// Sends `command` and waits for its reply: it comes once the change the command made (or
    /// the state it read) is durable.
    pub async fn ask<C: Command<E>>(&self, command: C) -> Result<C::Reply, AskError<E::Error>> {
        let request = self.request(&command)?;
        let mut options = CallOptions::timeout(self.timeout);
        options.idempotent = C::IDEMPOTENT;
        let answer = self
            .router
            .call_sharded(&self.id.key(), request, options)
            .await?;
        match answer {
            Ok(bytes) => decode(&bytes).map_err(AskError::Call),
            Err(Failure::Domain(bytes)) => Err(AskError::Domain(decode(&bytes)?)),
            Err(Failure::Store(e)) => Err(AskError::Store(e)),
            Err(other) => Err(AskError::Call(CallError::BadMessage(other.to_string()))),
        }
    }

    /// Sends `command` without waiting for a reply: returns once it is handed to the shard's
    /// node (at most once delivered).
    pub async fn tell<C: Command<E>>(&self, command: C) -> Result<(), CallError> {
        let request = self.request(&command)?;
        let Some((shard, node)) = self.router.shard_of(&self.id.key()) else {
            return Err(CallError::NoMember(E::NAME.to_string()));
        };
        let mut options = CallOptions::timeout(self.timeout).on(node);
        options.member = Some(shard);
        self.router.cast_with(request, options).await
    }
}
