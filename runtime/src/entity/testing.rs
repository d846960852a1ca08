//! An in-process harness for one entity type: its service over a real store in a temporary
//! directory, with no ports, no cluster and no actors, so that a business service's unit test
//! takes milliseconds, including "crash here, reopen from disk, go on".
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! # use troupe_runtime::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};
//! # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, thiserror::Error)]
//! # #[error("never")] struct Never;
//! # impl DomainError for Never { fn kind(&self) -> DomainKind { DomainKind::Conflict } }
//! # struct Counter;
//! # impl Entity for Counter {
//! #     const NAME: &'static str = "counters";
//! #     type Id = String; type State = u64; type Error = Never;
//! #     fn commands(c: &mut Commands<Self>) { c.add::<Add>(); }
//! # }
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Add(u64);
//! # impl Command<Counter> for Add {
//! #     const NAME: &'static str = "add"; type Reply = u64;
//! #     fn handle(self, cx: &mut Context<'_, Counter>) -> Result<u64, Never> {
//! #         let n = cx.state().copied().unwrap_or(0) + self.0; cx.set(n); Ok(n)
//! #     }
//! # }
//! use troupe_runtime::entity::testing::Harness;
//!
//! let mut counters = Harness::<Counter>::new().await?;
//! assert_eq!(counters.ask("a".to_string(), Add(2)).await?, 2);
//! counters.crash().await?; // reopen the store from disk
//! assert_eq!(counters.ask("a".to_string(), Add(1)).await?, 3);
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use super::call::AskError;
use super::service::{EntityRequest, EntityService, Failure};
use super::{Command, Entity};
use crate::cluster::NodeId;
use crate::service::{CallError, MemberInfo, RequestContext, decode, encode};
use crate::store::{Engine, Keyspace, Store, StoreError};

/// The cache of a harness's store.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// One shard of entity `E` over a store of its own.
pub struct Harness<E: Entity> {
    /// Removed when the harness is dropped (None: the store is over the caller's engine).
    dir: Option<tempfile::TempDir>,
    /// The caller's engine, which a crash keeps (only its store and shard restart).
    engine: Option<Arc<dyn Engine>>,
    service: EntityService<E>,
    member: MemberInfo,
    shard: Option<(Store, Keyspace)>,
}

impl<E: Entity> std::fmt::Debug for Harness<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("entity", &E::NAME)
            .finish_non_exhaustive()
    }
}

fn member_info(service: &'static str, store: Option<Store>) -> MemberInfo {
    MemberInfo {
        service,
        node: NodeId::try_new("harness").unwrap_or_else(|_| unreachable!("a valid id")),
        index: 0,
        sharded: true,
        store,
    }
}

impl<E: Entity> Harness<E> {
    /// A harness over a fresh store in a temporary directory.
    pub async fn new() -> Result<Self, StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Engine(e.to_string()))?;
        let mut harness = Self {
            dir: Some(dir),
            engine: None,
            service: EntityService::new(),
            member: member_info(E::NAME, None),
            shard: None,
        };
        harness.open().await?;
        Ok(harness)
    }

    /// A harness over a store of `engine` (to hold or fail its flushes); [`Harness::crash`]
    /// reopens the keyspace over the same engine.
    pub async fn with_engine(engine: Arc<dyn Engine>) -> Result<Self, StoreError> {
        let mut harness = Self {
            dir: None,
            engine: Some(engine),
            service: EntityService::new(),
            member: member_info(E::NAME, None),
            shard: None,
        };
        harness.open().await?;
        Ok(harness)
    }

    fn path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("store"))
    }

    async fn open(&mut self) -> Result<(), StoreError> {
        let store = match (&self.engine, self.path()) {
            (Some(engine), _) => Store::with_engine(Arc::clone(engine)),
            (None, Some(path)) => Self::open_path(path).await?,
            (None, None) => return Err(StoreError::Engine("the harness has no store".into())),
        };
        let keyspace = store
            .claim(&format!("{}/0", E::NAME), tokio::time::Duration::ZERO)
            .await?;
        self.member = member_info(E::NAME, Some(store.clone()));
        self.shard = Some((store, keyspace));
        Ok(())
    }

    async fn open_path(path: PathBuf) -> Result<Store, StoreError> {
        // The store just dropped lets go of its files once its committer has noticed: retry
        // the open until then.
        let deadline = tokio::time::Instant::now() + tokio::time::Duration::from_secs(10);
        let store = loop {
            let path = path.clone();
            let opened = tokio::task::spawn_blocking(move || Store::open(&path, CACHE_BYTES))
                .await
                .map_err(|e| StoreError::Engine(e.to_string()))?;
            match opened {
                Ok(store) => break store,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(tokio::time::Duration::from_millis(20)).await,
            }
        };
        Ok(store)
    }

    /// Sends `command` to entity `id` and waits for its reply, which comes once durable.
    pub async fn ask<C: Command<E>>(
        &self,
        id: E::Id,
        command: C,
    ) -> Result<C::Reply, AskError<E::Error>> {
        let Some((_, keyspace)) = &self.shard else {
            return Err(AskError::Call(CallError::NoMember(E::NAME.to_string())));
        };
        let request = EntityRequest {
            command: C::NAME.to_string(),
            id: encode(&id)?,
            payload: encode(&command)?,
        };
        let cx = RequestContext::new(&self.member, None, None);
        let answer = self.service.apply(keyspace, &request, &cx);
        let after = cx
            .reply_after
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(durable) = after {
            durable
                .wait()
                .await
                .map_err(|e| AskError::Call(CallError::NotDurable(e.to_string())))?;
        }
        match answer {
            Ok(bytes) => Ok(decode(&bytes)?),
            Err(Failure::Domain(bytes)) => Err(AskError::Domain(decode(&bytes)?)),
            Err(Failure::Store(e)) => Err(AskError::Store(e)),
            Err(other) => Err(AskError::Call(CallError::BadMessage(other.to_string()))),
        }
    }

    /// Drops the shard and its store as a crash would (nothing is flushed on the way out) and
    /// opens them again from disk (over a caller's engine: a new store over it), as the
    /// node's restart would.
    pub async fn crash(&mut self) -> Result<(), StoreError> {
        self.shard = None;
        self.member = member_info(E::NAME, None);
        self.open().await
    }
}
