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
use std::sync::{Arc, Mutex};

use tokio::time::Duration;

use super::call::AskError;
use super::effects::{OutboxRecord, TIMER_PREFIX, TimerRecord};
use super::service::{EntityRequest, EntityService, Failure, Shard};
use super::{Command, Entity};
use crate::cluster::NodeId;
use crate::service::{
    Answering, CallError, MemberInfo, Outbound, Post, Posting, RequestContext, To, decode,
};
use crate::store::{Engine, Store, StoreError};

/// The cache of a harness's store.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// One request a handler's effects posted (a tell, or a timer that fired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The service it was for.
    pub service: String,
    /// Which member.
    pub to: To,
    /// The encoded request.
    pub request: Vec<u8>,
    /// The trace it was posted in, if any.
    pub trace: Option<crate::telemetry::TraceContext>,
}

/// Records what is posted, in order, instead of delivering it.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Posted>>);

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Posted>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Post for Recorder {
    fn post(&self, service: &str, to: To, request: Vec<u8>, _timeout: Duration) -> Posting {
        self.lock().push(Posted {
            service: service.to_string(),
            to,
            request,
            trace: crate::telemetry::current(),
        });
        Box::pin(async { Ok(()) })
    }

    /// Records the request too; no one answers in a harness.
    fn call(&self, service: &str, to: To, request: Vec<u8>, timeout: Duration) -> Answering {
        // Recorded when posted; the posting itself has nothing left to do.
        drop(self.post(service, to, request, timeout));
        let service = service.to_string();
        Box::pin(async move { Err(CallError::NoMember(service)) })
    }
}

/// One shard of entity `E` over a store of its own.
pub struct Harness<E: Entity> {
    /// Removed when the harness is dropped (None: the store is over the caller's engine).
    dir: Option<tempfile::TempDir>,
    /// The caller's engine, which a crash keeps (only its store and shard restart).
    engine: Option<Arc<dyn Engine>>,
    service: EntityService<E>,
    member: MemberInfo,
    posted: Arc<Recorder>,
    /// A std mutex: held while a command is applied, never across an await.
    shard: Mutex<Option<(Store, Shard)>>,
}

impl<E: Entity> std::fmt::Debug for Harness<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("entity", &E::NAME)
            .finish_non_exhaustive()
    }
}

fn member_info(service: &'static str, store: Option<Store>, posted: &Arc<Recorder>) -> MemberInfo {
    MemberInfo {
        service,
        node: NodeId::try_new("harness").unwrap_or_else(|_| unreachable!("a valid id")),
        index: 0,
        sharded: true,
        store,
        // No subscription: the outbox stays for the test to read.
        outbound: Some(Outbound::new(
            Arc::clone(posted) as Arc<dyn Post>,
            Arc::new(crate::events::Bus::default()),
        )),
    }
}

impl<E: Entity> Harness<E> {
    /// A harness over a fresh store in a temporary directory.
    pub async fn new() -> Result<Self, StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Engine(e.to_string()))?;
        Self::build(Some(dir), None).await
    }

    /// A harness over a store of `engine` (to hold or fail its flushes); [`Harness::crash`]
    /// reopens the keyspace over the same engine.
    pub async fn with_engine(engine: Arc<dyn Engine>) -> Result<Self, StoreError> {
        Self::build(None, Some(engine)).await
    }

    async fn build(
        dir: Option<tempfile::TempDir>,
        engine: Option<Arc<dyn Engine>>,
    ) -> Result<Self, StoreError> {
        let posted = Arc::new(Recorder::default());
        let mut harness = Self {
            dir,
            engine,
            service: EntityService::new(),
            member: member_info(E::NAME, None, &posted),
            posted,
            shard: Mutex::new(None),
        };
        harness.open().await?;
        Ok(harness)
    }

    fn shard(&self) -> std::sync::MutexGuard<'_, Option<(Store, Shard)>> {
        self.shard.lock().unwrap_or_else(|p| p.into_inner())
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
            .claim(&format!("{}/0", E::NAME), Duration::ZERO)
            .await?;
        self.member = member_info(E::NAME, Some(store.clone()), &self.posted);
        let shard = Shard::open::<E>(keyspace, self.member.outbound.clone())?;
        *self.shard() = Some((store, shard));
        Ok(())
    }

    async fn open_path(path: PathBuf) -> Result<Store, StoreError> {
        // The store just dropped lets go of its files once its committer has noticed: retry
        // the open until then.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let store = loop {
            let path = path.clone();
            let opened = tokio::task::spawn_blocking(move || Store::open(&path, CACHE_BYTES))
                .await
                .map_err(|e| StoreError::Engine(e.to_string()))?;
            match opened {
                Ok(store) => break store,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        Ok(store)
    }

    /// Sends `command` to entity `id` and waits for its reply, which comes once durable (its
    /// effects are released then too: see [`Harness::posted`]).
    pub async fn ask<C: Command<E>>(
        &self,
        id: E::Id,
        command: C,
    ) -> Result<C::Reply, AskError<E::Error>> {
        let request = EntityRequest::new::<E, C>(&id, &command, None)?;
        let answer = self.run(&request).await?;
        match answer {
            Ok(bytes) => Ok(decode(&bytes)?),
            Err(Failure::Domain(bytes)) => Err(AskError::Domain(decode(&bytes)?)),
            Err(Failure::Store(e)) => Err(AskError::Store(e)),
            Err(other) => Err(AskError::Call(CallError::BadMessage(other.to_string()))),
        }
    }

    /// Runs `request` as the member would: applies it, waits for durability, releases its
    /// effects.
    async fn run(
        &self,
        request: &EntityRequest,
    ) -> Result<Result<Vec<u8>, Failure>, AskError<E::Error>> {
        let cx = RequestContext::new(&self.member, None, None);
        let answer = {
            let mut guard = self.shard();
            let Some((_, shard)) = guard.as_mut() else {
                return Err(AskError::Call(CallError::NoMember(E::NAME.to_string())));
            };
            self.service.apply(shard, request, &cx)
        };
        let (after, effects) = cx.into_release();
        if let Some(durable) = after {
            durable
                .wait()
                .await
                .map_err(|e| AskError::Call(CallError::NotDurable(e.to_string())))?;
        }
        effects.into_iter().for_each(|effect| effect());
        Ok(answer)
    }

    /// Everything the effects of the commands so far posted, in order: tells, and timers
    /// that fired (a timer fires after its delay, on the runtime's clock: a test with a
    /// paused clock advances it).
    pub fn posted(&self) -> Vec<Posted> {
        self.posted.lock().clone()
    }

    /// Adds `posted` to what was posted, as if an effect had posted it again (a duplicate
    /// delivery, to show that a command copes with one).
    pub fn inject(&self, posted: Posted) {
        self.posted.lock().push(posted);
    }

    /// The commands `C` told to entities of type `T` so far, with their ids, in order.
    pub fn told<T: Entity, C: Command<T>>(&self) -> Vec<(T::Id, C)> {
        self.posted()
            .into_iter()
            .filter(|p| p.service == T::NAME)
            .filter_map(|p| decode::<EntityRequest>(&p.request).ok())
            .filter(|r| r.command == C::NAME)
            .filter_map(|r| Some((decode(&r.id).ok()?, decode(&r.payload).ok()?)))
            .collect()
    }

    /// Delivers to this shard what was posted to entities of type `E` (tells to itself and
    /// timers that fired), in order, as the runtime would; returns how many it delivered.
    /// What they post in turn waits for the next call.
    pub async fn deliver_to_self(&self) -> Result<usize, AskError<E::Error>> {
        let mine: Vec<Posted> = {
            let mut posted = self.posted.lock();
            let (mine, others) = posted.drain(..).partition(|p| p.service == E::NAME);
            *posted = others;
            mine
        };
        for p in &mine {
            let request: EntityRequest = decode(&p.request)?;
            // A refusal or a timer that fired already is the command's own business.
            let _ = self.run(&request).await?;
        }
        Ok(mine.len())
    }

    /// The events in the shard's outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxRecord>, StoreError> {
        let guard = self.shard();
        let Some((_, shard)) = guard.as_ref() else {
            return Ok(Vec::new());
        };
        Ok(shard
            .outbox(None, usize::MAX)?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    /// The durable timers waiting in the shard: when each is due (milliseconds since the Unix
    /// epoch) and its command's name.
    pub fn timers(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let guard = self.shard();
        let Some((_, shard)) = guard.as_ref() else {
            return Ok(Vec::new());
        };
        Ok(shard
            .keyspace()
            .scan::<TimerRecord>(TIMER_PREFIX, None, usize::MAX)?
            .into_iter()
            .map(|(_, t)| (t.due_ms, t.request.command))
            .collect())
    }

    /// Drops the shard and its store as a crash would (nothing is flushed on the way out) and
    /// opens them again from disk (over a caller's engine: a new store over it), as the
    /// node's restart would. Durable timers are armed again; in-memory ones are gone.
    pub async fn crash(&mut self) -> Result<(), StoreError> {
        *self.shard() = None;
        self.member = member_info(E::NAME, None, &self.posted);
        self.open().await
    }
}
