#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde::{Deserialize, Serialize};
use tokio::time::Duration;

use super::testing::Harness;
use super::*;
use crate::service::CallError;
use crate::store::{Engine, KeyspaceEngine, SledEngine, StoreError};

/// A wallet per user: the smallest entity with a domain error.
struct Wallet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
enum WalletError {
    #[error("wallet {0} does not exist")]
    NotFound(String),
    #[error("balance {balance} is less than {wanted}")]
    Insufficient { balance: u64, wanted: u64 },
}

impl DomainError for WalletError {
    fn kind(&self) -> DomainKind {
        match self {
            Self::NotFound(_) => DomainKind::NotFound,
            Self::Insufficient { .. } => DomainKind::Unprocessable,
        }
    }
}

impl Entity for Wallet {
    const NAME: &'static str = "wallets";
    type Id = String;
    type State = u64;
    type Error = WalletError;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Deposit>().add::<Withdraw>().add::<Balance>();
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Deposit(u64);

impl Command<Wallet> for Deposit {
    const NAME: &'static str = "deposit";
    type Reply = u64;
    fn handle(self, cx: &mut Context<'_, Wallet>) -> Result<u64, WalletError> {
        let balance = cx.state().copied().unwrap_or(0) + self.0;
        cx.set(balance);
        Ok(balance)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Withdraw(u64);

impl Command<Wallet> for Withdraw {
    const NAME: &'static str = "withdraw";
    type Reply = u64;
    fn handle(self, cx: &mut Context<'_, Wallet>) -> Result<u64, WalletError> {
        let id = cx.id().clone();
        let balance = cx.state_mut().ok_or(WalletError::NotFound(id))?;
        if *balance < self.0 {
            return Err(WalletError::Insufficient {
                balance: *balance,
                wanted: self.0,
            });
        }
        *balance -= self.0;
        Ok(*balance)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Balance;

impl Command<Wallet> for Balance {
    const NAME: &'static str = "balance";
    const IDEMPOTENT: bool = true;
    type Reply = u64;
    fn handle(self, cx: &mut Context<'_, Wallet>) -> Result<u64, WalletError> {
        cx.state()
            .copied()
            .ok_or_else(|| WalletError::NotFound(cx.id().clone()))
    }
}

#[tokio::test]
async fn state_is_created_changed_and_reloaded_after_a_crash() {
    let mut wallets = Harness::<Wallet>::new().await.unwrap();
    let ann = "ann".to_string();
    assert_eq!(
        wallets.ask(ann.clone(), Balance).await,
        Err(AskError::Domain(WalletError::NotFound("ann".into()))),
        "absent until a command creates it"
    );
    assert_eq!(wallets.ask(ann.clone(), Deposit(100)).await, Ok(100));
    assert_eq!(wallets.ask(ann.clone(), Withdraw(30)).await, Ok(70));
    // A refused command changes nothing, and says why in the domain's own terms.
    let refused = wallets.ask(ann.clone(), Withdraw(500)).await.unwrap_err();
    assert_eq!(
        refused.domain().map(DomainError::kind),
        Some(DomainKind::Unprocessable)
    );
    assert_eq!(wallets.ask("bob".to_string(), Deposit(5)).await, Ok(5));

    wallets.crash().await.unwrap();
    assert_eq!(wallets.ask(ann.clone(), Balance).await, Ok(70));
    assert_eq!(wallets.ask("bob".to_string(), Balance).await, Ok(5));
    assert_eq!(wallets.ask(ann, Withdraw(70)).await, Ok(0));
}

/// An engine over sled whose flushes the test can hold, or make fail.
pub(super) struct Controlled {
    inner: SledEngine,
    held: Mutex<bool>,
    released: Condvar,
    pub(super) fail: AtomicBool,
    /// Flushes started so far.
    pub(super) flushes: std::sync::atomic::AtomicUsize,
}

impl Controlled {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: SledEngine::temporary().unwrap(),
            held: Mutex::new(false),
            released: Condvar::new(),
            fail: AtomicBool::new(false),
            flushes: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn hold(&self, held: bool) {
        *self.held.lock().unwrap() = held;
        self.released.notify_all();
    }
}

/// Holds an engine's flushes until dropped: a failing assertion must not leave a flush blocked
/// forever (the test's runtime waits for its blocking threads when it shuts down).
pub(super) struct Held(Arc<Controlled>);

impl Held {
    pub(super) fn new(engine: &Arc<Controlled>) -> Self {
        engine.hold(true);
        Self(Arc::clone(engine))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.hold(false);
    }
}

impl Engine for Controlled {
    fn keyspace(&self, name: &str) -> Result<Arc<dyn KeyspaceEngine>, StoreError> {
        self.inner.keyspace(name)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        let mut held = self.held.lock().unwrap();
        while *held {
            held = self.released.wait(held).unwrap();
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Engine("the disk refused the flush".into()));
        }
        self.inner.flush()
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.inner.size_on_disk()
    }

    fn keyspace_names(&self) -> Result<Vec<String>, StoreError> {
        self.inner.keyspace_names()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_never_leaves_before_its_batch_is_durable() {
    let engine = Controlled::new();
    let wallets = Arc::new(
        Harness::<Wallet>::with_engine(Arc::clone(&engine) as Arc<dyn Engine>)
            .await
            .unwrap(),
    );
    // Opening the store flushes once (its batch generation): count from here.
    let flushes = engine.flushes.load(Ordering::SeqCst);
    let held = Held::new(&engine);
    let pending = {
        let wallets = Arc::clone(&wallets);
        tokio::spawn(async move { wallets.ask("ann".to_string(), Deposit(10)).await })
    };
    // The write is applied once its flush has started (and is held there).
    let started = tokio::time::Instant::now();
    while engine.flushes.load(Ordering::SeqCst) == flushes {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the write never reached its flush"
        );
        tokio::task::yield_now().await;
    }
    // While the flush is held, no reply: not a write's, nor a read's of what it saw.
    let reader = {
        let wallets = Arc::clone(&wallets);
        tokio::spawn(async move { wallets.ask("ann".to_string(), Balance).await })
    };
    let waited = tokio::time::timeout(Duration::from_millis(200), async {
        while !pending.is_finished() && !reader.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_err(), "a reply left before its batch was durable");
    drop(held);
    assert_eq!(pending.await.unwrap(), Ok(10));
    assert_eq!(reader.await.unwrap(), Ok(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_fails_what_was_not_acknowledged_and_loses_nothing_that_was() {
    let engine = Controlled::new();
    let mut wallets = Harness::<Wallet>::with_engine(Arc::clone(&engine) as Arc<dyn Engine>)
        .await
        .unwrap();
    assert_eq!(wallets.ask("ann".to_string(), Deposit(10)).await, Ok(10));
    engine.fail.store(true, Ordering::SeqCst);
    let failed = wallets.ask("ann".to_string(), Deposit(5)).await;
    assert!(
        matches!(failed, Err(AskError::Call(CallError::NotDurable(_)))),
        "an unacknowledged write fails as not durable: {failed:?}"
    );
    // The store acknowledges nothing more until it is restarted from disk.
    let after = wallets.ask("bob".to_string(), Deposit(1)).await;
    assert!(after.is_err(), "{after:?}");
    engine.fail.store(false, Ordering::SeqCst);
    wallets.crash().await.unwrap();
    let balance = wallets.ask("ann".to_string(), Balance).await;
    assert!(
        matches!(balance, Ok(10) | Ok(15)),
        "the acknowledged deposit is there (the unacknowledged one may be): {balance:?}"
    );
}

/// One node with a store, hosting `Wallet` in 4 shards.
async fn node_with_wallets(dir: &std::path::Path) -> crate::Runtime {
    let runtime = one_node(dir, &[Wallet::NAME]).await;
    runtime.host(EntityService::<Wallet>::new()).await.unwrap();
    runtime
}

/// One node with a store in `dir`, with `services` configured in 4 shards each (not hosted).
pub(super) async fn one_node(dir: &std::path::Path, services: &[&str]) -> crate::Runtime {
    use std::collections::HashMap;

    use crate::cluster::NodeSpec;
    use crate::runtime::{RuntimeSettings, StoreSettings};
    use crate::service::ServiceSpec;
    use crate::supervisor::RestartPolicy;
    use crate::{ClusterSettings, NodeId};

    // A store just dropped (a runtime shut down) lets go of its files once its committer
    // notices: the start is tried again until then.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            })
            .collect();
        let me = NodeId::try_new("e1").unwrap();
        let started = crate::Runtime::start(RuntimeSettings {
            cluster: ClusterSettings::new(
                "e1",
                vec![NodeSpec {
                    id: me.clone(),
                    cluster_addr: format!("127.0.0.1:{}", ports[0]).parse().unwrap(),
                }],
                "entity-test-cookie-0123456".into(),
            )
            .unwrap(),
            link_addrs: HashMap::from([(me, format!("127.0.0.1:{}", ports[1]).parse().unwrap())]),
            services: services
                .iter()
                .map(|name| {
                    let spec = ServiceSpec {
                        shards: Some(4),
                        ..ServiceSpec::default()
                    };
                    (name.to_string(), spec)
                })
                .collect(),
            restart: RestartPolicy::default(),
            store: Some(StoreSettings {
                path: dir.join("store"),
                cache_bytes: 8 * 1024 * 1024,
            }),
            event_max_attempts: crate::events::bus::DEFAULT_MAX_ATTEMPTS,
        })
        .await;
        match started {
            Ok(runtime) => return runtime,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "start: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_are_asked_by_id_through_the_runtime_and_each_lives_in_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = node_with_wallets(dir.path()).await;
    let names: Vec<String> = (0..20).map(|i| format!("user-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let wallet = runtime.entity::<Wallet>(name.clone());
        assert_eq!(wallet.ask(Deposit(i as u64 + 1)).await, Ok(i as u64 + 1));
    }
    for (i, name) in names.iter().enumerate() {
        let wallet = runtime
            .entity::<Wallet>(name.clone())
            .with_timeout(Duration::from_secs(2));
        assert_eq!(wallet.ask(Balance).await, Ok(i as u64 + 1), "{name}");
    }
    let refused = runtime
        .entity::<Wallet>("user-0".to_string())
        .ask(Withdraw(1000))
        .await;
    assert_eq!(
        refused,
        Err(AskError::Domain(WalletError::Insufficient {
            balance: 1,
            wanted: 1000
        }))
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    drop(runtime);
    // Each entity's state is in the keyspace of the shard its id maps to, and only there.
    let path = dir.path().join("store");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let store = loop {
        match crate::store::Store::open(&path, 8 * 1024 * 1024) {
            Ok(store) => break store,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "reopen: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut found = 0;
    for shard in 0..4u32 {
        let keyspace = store
            .claim(&format!("{}/{shard}", Wallet::NAME), Duration::ZERO)
            .await
            .unwrap();
        for (key, _) in keyspace.scan::<u64>(b"s/", None, 100).unwrap() {
            assert_eq!(
                crate::shard::shard_of(&key[2..], 4),
                shard,
                "{} is in shard {shard}",
                String::from_utf8_lossy(&key)
            );
            found += 1;
        }
    }
    assert_eq!(found, names.len());
}

/// An entity whose state is as large as it is told: for listings that stop at a byte budget.
struct Blob;

impl Entity for Blob {
    const NAME: &'static str = "blobs";
    type Id = String;
    type State = Vec<u8>;
    type Error = WalletError;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Fill>();
    }
}

/// Sets the blob to `.1` bytes of `.0`.
#[derive(Debug, Serialize, Deserialize)]
struct Fill(u8, usize);

impl Command<Blob> for Fill {
    const NAME: &'static str = "fill";
    type Reply = ();
    fn handle(self, cx: &mut Context<'_, Blob>) -> Result<(), WalletError> {
        cx.set(vec![self.0; self.1]);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_through_every_shard_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = node_with_wallets(dir.path()).await;
    assert!(runtime.list::<Wallet>(None, 10).await.unwrap().is_empty());
    // Balances 1..=50 for user-00..user-49: the balance says which user it is.
    for i in 0..50u64 {
        let wallet = runtime.entity::<Wallet>(format!("user-{i:02}"));
        wallet.ask(Deposit(i + 1)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = runtime.list::<Wallet>(after.as_ref(), 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        seen.extend(page);
    }
    let wanted: Vec<(String, u64)> = (0..50).map(|i| (format!("user-{i:02}"), i + 1)).collect();
    assert_eq!(seen, wanted, "every wallet once, in id order");
    let from_middle = runtime
        .list::<Wallet>(Some(&"user-44".to_string()), 100)
        .await
        .unwrap();
    let balances: Vec<u64> = from_middle.into_iter().map(|(_, b)| b).collect();
    assert_eq!(balances, vec![46, 47, 48, 49, 50]);
    // A page says whether more may follow; a whole listing in one page says no.
    let all = runtime.list_page::<Wallet>(None, 100).await.unwrap();
    assert_eq!((all.entries.len(), all.more), (50, false));
    let first = runtime.list_page::<Wallet>(None, 7).await.unwrap();
    assert!(first.more && !first.entries.is_empty() && first.entries.len() <= 7);
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_large_states_is_bounded_per_shard_and_still_complete_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = one_node(dir.path(), &[Blob::NAME]).await;
    runtime.host(EntityService::<Blob>::new()).await.unwrap();
    // 24 blobs of 200 KiB: a shard's answer holds at most three before its byte budget.
    for i in 0..24u8 {
        let blob = runtime.entity::<Blob>(format!("blob-{i:02}"));
        blob.ask(Fill(i, 200 * 1024)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = runtime.list::<Blob>(after.as_ref(), 20).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        seen.extend(page.iter().map(|(id, b)| (id.clone(), b[0], b.len())));
    }
    let wanted: Vec<(String, u8, usize)> = (0..24)
        .map(|i| (format!("blob-{i:02}"), i, 200 * 1024))
        .collect();
    assert_eq!(seen, wanted);
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_after_a_shard_restart_in_the_same_process_are_applied() {
    use crate::builtin::probe::{self, Emit, Probe, Read, Tally};
    let dir = tempfile::tempdir().unwrap();
    let runtime = one_node(dir.path(), &[Probe::NAME, Tally::NAME]).await;
    runtime
        .subscribe::<Tally, probe::Apply>(probe::SUBSCRIPTION, probe::TOPIC, probe::to_tally)
        .unwrap();
    runtime.host(EntityService::<Tally>::new()).await.unwrap();
    runtime.host(EntityService::<Probe>::new()).await.unwrap();
    let key = "k".to_string();
    let shard = crate::shard::shard_of(key.as_bytes(), 4);
    for round in 1..=4u64 {
        // A publish, applied by the subscriber; the shard killed (its supervisor starts it
        // again in this process: same store, same generation); and again.
        let emitted = loop {
            match runtime.entity::<Probe>(key.clone()).ask(Emit).await {
                Ok(n) => break n,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        assert_eq!(emitted, round);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let counts = runtime.entity::<Tally>(key.clone()).ask(Read).await;
            if counts.as_ref().is_ok_and(|c| c.applied == round) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: the tally never applied event {round}: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        runtime.kill_shard(Probe::NAME, shard).await.unwrap();
    }
    runtime.shutdown(Duration::from_secs(5)).await;
}
