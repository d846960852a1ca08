#![allow(clippy::unwrap_used)] // a panic is how a test fails

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use super::{DEAD_PREFIX, DeadLetter};
use crate::Runtime;
use crate::entity::effects::OUTBOX_PREFIX;
use crate::entity::tests::one_node;
use crate::entity::*;
use crate::events::Event;

/// Records numbers per key and publishes each.
struct Ledger;

/// The event a ledger publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recorded {
    key: String,
    n: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
enum Refused {
    #[error("{0} is refused")]
    Poison(u64),
}

impl DomainError for Refused {
    fn kind(&self) -> DomainKind {
        DomainKind::Unprocessable
    }
}

impl Entity for Ledger {
    const NAME: &'static str = "ledgers";
    type Id = String;
    type State = u64;
    type Error = Refused;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Record>();
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record(u64);

impl Command<Ledger> for Record {
    const NAME: &'static str = "record";
    type Reply = ();
    fn handle(self, cx: &mut Context<'_, Ledger>) -> Result<(), Refused> {
        cx.set(self.0);
        let key = cx.id().clone();
        cx.publish("ledger.recorded", &Recorded { key, n: self.0 });
        Ok(())
    }
}

/// Keeps, per key, every number delivered to it, in the order applied; refuses 13, and
/// everything for key `fixable` until [`FIXED`].
struct Tally;

/// Whether the tally's bug for key `fixable` is fixed.
static FIXED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Entity for Tally {
    const NAME: &'static str = "tallies";
    type Id = String;
    type State = Vec<u64>;
    type Error = Refused;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Count>().add::<Seen>();
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Count(u64);

impl Command<Tally> for Count {
    const NAME: &'static str = "count";
    type Reply = ();
    fn handle(self, cx: &mut Context<'_, Tally>) -> Result<(), Refused> {
        if self.0 == 13 {
            return Err(Refused::Poison(13));
        }
        if cx.id() == "fixable" && !FIXED.load(std::sync::atomic::Ordering::SeqCst) {
            // A subscriber with a bug for this key, until it is fixed.
            return Err(Refused::Poison(self.0));
        }
        assert!(cx.delivery().is_some(), "an event comes with its delivery");
        let mut seen = cx.state().cloned().unwrap_or_default();
        seen.push(self.0);
        cx.set(seen);
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen;

impl Command<Tally> for Seen {
    const NAME: &'static str = "seen";
    const IDEMPOTENT: bool = true;
    type Reply = Vec<u64>;
    fn handle(self, cx: &mut Context<'_, Tally>) -> Result<Vec<u64>, Refused> {
        Ok(cx.state().cloned().unwrap_or_default())
    }
}

fn to_count(event: &Event) -> Option<(String, Count)> {
    let recorded: Recorded = event.decode().ok()?;
    Some((recorded.key, Count(recorded.n)))
}

/// A node with both services configured; the subscription declared; `Ledger` hosted, and
/// `Tally` too if `with_tally`.
async fn node(dir: &std::path::Path, with_tally: bool) -> Runtime {
    let runtime = one_node(dir, &[Ledger::NAME, Tally::NAME]).await;
    runtime
        .subscribe::<Tally, Count>("tally-records", "ledger.*", to_count)
        .unwrap();
    if with_tally {
        runtime.host(EntityService::<Tally>::new()).await.unwrap();
    }
    runtime.host(EntityService::<Ledger>::new()).await.unwrap();
    runtime
}

/// Polls `condition` every 20 ms until it holds, or panics naming `what` after `limit`.
async fn wait_for(what: &str, limit: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records 1..=n on each of `keys`, the keys concurrently, each key in order.
async fn record(runtime: &Runtime, keys: &[String], n: u64) {
    let writers = keys.iter().map(|key| {
        let ledger = runtime.entity::<Ledger>(key.clone());
        async move {
            for i in 1..=n {
                ledger.ask(Record(i)).await.unwrap();
            }
        }
    });
    futures_join_all(writers).await;
}

/// Runs every future to its end (the crate has no `futures` dependency).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) {
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

async fn seen(runtime: &Runtime, key: &str) -> Vec<u64> {
    runtime
        .entity::<Tally>(key.to_string())
        .ask(Seen)
        .await
        .unwrap_or_default()
}

/// What is left in the outbox and the dead letters of every ledger shard, after `runtime`
/// stopped.
async fn leftovers(dir: &std::path::Path) -> (usize, Vec<DeadLetter>) {
    let path = dir.join("store");
    let deadline = Instant::now() + Duration::from_secs(10);
    let store = loop {
        match crate::store::Store::open(&path, 1024 * 1024) {
            Ok(store) => break store,
            Err(e) => {
                assert!(Instant::now() < deadline, "reopen: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut outbox = 0;
    let mut dead = Vec::new();
    for shard in 0..4 {
        let ks = store
            .claim(&format!("{}/{shard}", Ledger::NAME), Duration::ZERO)
            .await
            .unwrap();
        outbox += ks
            .scan::<crate::entity::OutboxRecord>(OUTBOX_PREFIX, None, usize::MAX)
            .unwrap()
            .len();
        dead.extend(
            ks.scan::<DeadLetter>(DEAD_PREFIX, None, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(_, d)| d),
        );
    }
    (outbox, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_applied_once_in_order_per_key_and_a_poison_one_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = node(dir.path(), true).await;
    let keys: Vec<String> = (0..8).map(|i| format!("key-{i}")).collect();
    record(&runtime, &keys, 40).await;
    let expected: Vec<u64> = (1..=40).filter(|n| *n != 13).collect();
    for key in &keys {
        wait_for(
            "every event of the key",
            Duration::from_secs(30),
            async || seen(&runtime, key).await.len() >= expected.len(),
        )
        .await;
        // In order, each once, the poison event left out (it held up nothing after it).
        assert_eq!(seen(&runtime, key).await, expected, "{key}");
    }
    runtime.shutdown(Duration::from_secs(5)).await;
    drop(runtime);
    let (_, dead) = leftovers(dir.path()).await;
    let mut poisoned: Vec<(String, u64, u32)> = dead
        .iter()
        .map(|d| {
            let recorded: Recorded = crate::service::decode(&d.event.payload).unwrap();
            (recorded.key, recorded.n, d.attempts)
        })
        .collect();
    poisoned.sort();
    let want: Vec<(String, u64, u32)> = keys
        .iter()
        .map(|k| (k.clone(), 13, crate::events::bus::DEFAULT_MAX_ATTEMPTS))
        .collect();
    assert_eq!(
        poisoned, want,
        "one dead letter per key, after every attempt"
    );
    assert!(dead.iter().all(|d| d.subscription == "tally-records"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_while_their_subscriber_is_away_are_delivered_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..4).map(|i| format!("key-{i}")).collect();
    {
        // The subscriber is not hosted: nothing can be delivered, everything stays.
        let runtime = node(dir.path(), false).await;
        record(&runtime, &keys, 10).await;
        runtime.shutdown(Duration::from_secs(5)).await;
    }
    let (outbox, _) = leftovers(dir.path()).await;
    assert_eq!(outbox, 40, "every committed event waits in the outbox");
    let runtime = node(dir.path(), true).await;
    let expected: Vec<u64> = (1..=10).collect();
    for key in &keys {
        wait_for(
            "the events from before the restart",
            Duration::from_secs(30),
            async || seen(&runtime, key).await.len() >= expected.len(),
        )
        .await;
        assert_eq!(seen(&runtime, key).await, expected, "{key}");
    }
    runtime.shutdown(Duration::from_secs(5)).await;
}

/// The request delivering `Count(n)` to tally `key` as event number `seq` of shard `source`.
fn delivery(key: &str, n: u64, seq: u64, redrive: bool) -> crate::entity::testing::Posted {
    let mut request =
        crate::entity::EntityRequest::new::<Tally, Count>(&key.to_string(), &Count(n), None)
            .unwrap();
    request.event = Some(crate::events::Delivery {
        subscription: "tally-records".into(),
        source: "ledgers/0".into(),
        key: key.as_bytes().to_vec(),
        seq,
        event: [seq as u8; 16],
        redrive,
    });
    crate::entity::testing::Posted {
        service: Tally::NAME.into(),
        to: crate::service::To::Shard(key.as_bytes().to_vec()),
        request: crate::service::encode(&request).unwrap(),
        trace: None,
    }
}

#[tokio::test]
async fn a_subscriber_applies_each_delivery_once_across_a_crash_and_a_redrive_once() {
    use crate::entity::testing::Harness;

    let mut tallies = Harness::<Tally>::new().await.unwrap();
    // Delivered, then delivered again (an answer lost on the way): applied once.
    tallies.inject(delivery("k", 1, 5, false));
    tallies.inject(delivery("k", 1, 5, false));
    assert_eq!(tallies.deliver_to_self().await, Ok(2));
    assert_eq!(tallies.ask("k".into(), Seen).await, Ok(vec![1]));
    // The mark is durable with the change: after a crash, still once.
    tallies.crash().await.unwrap();
    tallies.inject(delivery("k", 1, 5, false));
    // An older event of the same source and key came before: it was applied already.
    tallies.inject(delivery("k", 0, 4, false));
    tallies.inject(delivery("k", 2, 6, false));
    assert_eq!(tallies.deliver_to_self().await, Ok(3));
    assert_eq!(tallies.ask("k".into(), Seen).await, Ok(vec![1, 2]));
    // A re-driven dead letter is older than the mark but was never applied: applied, once.
    tallies.inject(delivery("k", 3, 2, true));
    tallies.inject(delivery("k", 3, 2, true));
    assert_eq!(tallies.deliver_to_self().await, Ok(2));
    assert_eq!(tallies.ask("k".into(), Seen).await, Ok(vec![1, 2, 3]));
    // A refused event changes nothing and leaves no mark: the same event number, accepted
    // later (a subscriber fixed meanwhile), is applied.
    tallies.inject(delivery("k", 13, 7, false));
    assert_eq!(tallies.deliver_to_self().await, Ok(1));
    assert_eq!(tallies.ask("k".into(), Seen).await, Ok(vec![1, 2, 3]));
    tallies.inject(delivery("k", 14, 7, false));
    assert_eq!(tallies.deliver_to_self().await, Ok(1));
    assert_eq!(tallies.ask("k".into(), Seen).await, Ok(vec![1, 2, 3, 14]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_and_redriven_once_after_the_subscriber_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = node(dir.path(), true).await;
    let fixable = vec!["fixable".to_string()];
    record(&runtime, &fixable, 2).await;
    let mut letters = Vec::new();
    wait_for(
        "both events in the dead letters",
        Duration::from_secs(30),
        async || {
            letters = runtime.dead_letters(Ledger::NAME).await.unwrap();
            letters.len() == 2
        },
    )
    .await;
    assert!(
        letters
            .iter()
            .all(|(_, l)| l.subscription == "tally-records"
                && l.attempts == crate::events::bus::DEFAULT_MAX_ATTEMPTS
                && l.last_error.contains("refused"))
    );
    assert_eq!(seen(&runtime, "fixable").await, Vec::<u64>::new());

    FIXED.store(true, std::sync::atomic::Ordering::SeqCst);
    letters.sort_by_key(|(_, l)| l.seq);
    for (shard, letter) in &letters {
        let redriven = runtime
            .redrive(Ledger::NAME, *shard, &letter.subscription, letter.seq)
            .await
            .unwrap();
        assert!(redriven);
        // Gone from the dead letters: a second redrive finds nothing.
        let again = runtime
            .redrive(Ledger::NAME, *shard, &letter.subscription, letter.seq)
            .await
            .unwrap();
        assert!(!again);
    }
    wait_for(
        "the redriven events to be applied",
        Duration::from_secs(30),
        async || seen(&runtime, "fixable").await.len() >= 2,
    )
    .await;
    assert_eq!(
        seen(&runtime, "fixable").await,
        vec![1, 2],
        "each once, in the order redriven"
    );
    assert_eq!(runtime.dead_letters(Ledger::NAME).await.unwrap().len(), 0);
    assert!(runtime.dead_letters("no-such-service").await.is_err());
    runtime.shutdown(Duration::from_secs(5)).await;
}

/// A stateless subscriber: remembers every event it was handed.
struct Audit(std::sync::Arc<std::sync::Mutex<Vec<(String, u64)>>>);

impl crate::service::Service for Audit {
    const NAME: &'static str = "audit";
    type Request = (String, u64);
    type Response = ();
    type State = ();

    async fn init(
        &self,
        _member: &crate::service::MemberInfo,
    ) -> Result<(), crate::service::ServiceError> {
        Ok(())
    }

    async fn handle(
        &self,
        _state: &mut (),
        request: (String, u64),
        _cx: &crate::service::RequestContext<'_>,
    ) {
        self.0.lock().unwrap().push(request);
    }
}

fn to_audit(event: &Event) -> Option<(String, u64)> {
    let recorded: Recorded = event.decode().ok()?;
    Some((recorded.key, recorded.n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_subscriber_gets_every_event_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = one_node(dir.path(), &[Ledger::NAME]).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    runtime
        .subscribe_service::<Audit>("audit-records", "ledger.#", to_audit)
        .unwrap();
    runtime
        .host(Audit(std::sync::Arc::clone(&seen)))
        .await
        .unwrap();
    runtime.host(EntityService::<Ledger>::new()).await.unwrap();
    let keys: Vec<String> = (0..3).map(|i| format!("key-{i}")).collect();
    record(&runtime, &keys, 5).await;
    let mut expected: Vec<(String, u64)> = keys
        .iter()
        .flat_map(|k| (1..=5).map(move |n| (k.clone(), n)))
        .collect();
    expected.sort();
    wait_for(
        "the audit to see every event",
        Duration::from_secs(20),
        async || {
            let mut got = seen.lock().unwrap().clone();
            got.sort();
            got.dedup();
            got == expected
        },
    )
    .await;
    // The acknowledgements come back after the audit handled the events.
    wait_for(
        "the relay to count every delivery",
        Duration::from_secs(20),
        async || runtime.bus().stats().subscriptions[0].delivered >= 15,
    )
    .await;
    let stats = runtime.bus().stats();
    assert_eq!(stats.subscriptions[0].name, "audit-records");
    assert_eq!(stats.published.get("ledger.recorded"), Some(&15));
    runtime.shutdown(Duration::from_secs(5)).await;
}
