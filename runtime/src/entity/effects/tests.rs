#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use crate::entity::effects::Armed;
use crate::entity::testing::Harness;
use crate::entity::tests::{Controlled, Held, one_node};
use crate::entity::*;
use crate::store::Engine;

mod timers;

/// An account that can pay another account: the smallest entity with every kind of effect.
struct Account;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Books {
    balance: u64,
    reminders: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
enum AccountError {
    #[error("balance {0} is too low")]
    TooLow(u64),
}

impl DomainError for AccountError {
    fn kind(&self) -> DomainKind {
        DomainKind::Unprocessable
    }
}

impl Entity for Account {
    const NAME: &'static str = "accounts";
    type Id = String;
    type State = Books;
    type Error = AccountError;

    fn commands(commands: &mut Commands<Self>) {
        commands
            .add::<Credit>()
            .add::<Pay>()
            .add::<Remind>()
            .add::<Snooze>()
            .add::<Forget>()
            .add::<Reminded>()
            .add::<Read>();
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Credit(u64);

impl Command<Account> for Credit {
    const NAME: &'static str = "credit";
    type Reply = u64;
    fn handle(self, cx: &mut Context<'_, Account>) -> Result<u64, AccountError> {
        let mut books = cx.state().cloned().unwrap_or_default();
        books.balance += self.0;
        cx.set(books.clone());
        Ok(books.balance)
    }
}

/// Takes `amount` from this account, tells `to` to credit it, and publishes the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pay {
    to: String,
    amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Paid {
    from: String,
    to: String,
    amount: u64,
}

impl Command<Account> for Pay {
    const NAME: &'static str = "pay";
    type Reply = u64;
    fn handle(self, cx: &mut Context<'_, Account>) -> Result<u64, AccountError> {
        let mut books = cx.state().cloned().unwrap_or_default();
        // Effects asked for before a refusal are dropped with it.
        cx.tell::<Account, _>(self.to.clone(), Credit(self.amount));
        cx.publish(
            "account.paid",
            &Paid {
                from: cx.id().clone(),
                to: self.to.clone(),
                amount: self.amount,
            },
        );
        if books.balance < self.amount {
            return Err(AccountError::TooLow(books.balance));
        }
        books.balance -= self.amount;
        cx.set(books.clone());
        Ok(books.balance)
    }
}

/// Schedules `Reminded` to itself after `after_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Remind {
    after_ms: u64,
    durable: bool,
}

impl Command<Account> for Remind {
    const NAME: &'static str = "remind";
    type Reply = ();
    fn handle(self, cx: &mut Context<'_, Account>) -> Result<(), AccountError> {
        let after = Duration::from_millis(self.after_ms);
        if self.durable {
            cx.schedule_durable(after, Reminded);
        } else {
            cx.schedule(after, Reminded);
        }
        Ok(())
    }
}

/// Schedules `Reminded` durably after `after_ms` and answers its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Snooze {
    after_ms: u64,
}

impl Command<Account> for Snooze {
    const NAME: &'static str = "snooze";
    type Reply = TimerId;
    fn handle(self, cx: &mut Context<'_, Account>) -> Result<TimerId, AccountError> {
        let books = cx.state().cloned().unwrap_or_default();
        cx.set(books);
        Ok(cx.schedule_durable(Duration::from_millis(self.after_ms), Reminded))
    }
}

/// Cancels a durable timer; refuses (cancelling nothing) if `refuse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Forget {
    timer: TimerId,
    refuse: bool,
}

impl Command<Account> for Forget {
    const NAME: &'static str = "forget";
    type Reply = ();
    fn handle(self, cx: &mut Context<'_, Account>) -> Result<(), AccountError> {
        cx.cancel_timer(&self.timer);
        if self.refuse {
            return Err(AccountError::TooLow(0));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reminded;

impl Command<Account> for Reminded {
    const NAME: &'static str = "reminded";
    type Reply = u32;
    fn handle(self, cx: &mut Context<'_, Account>) -> Result<u32, AccountError> {
        let mut books = cx.state().cloned().unwrap_or_default();
        books.reminders += 1;
        cx.set(books.clone());
        Ok(books.reminders)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Read;

impl Command<Account> for Read {
    const NAME: &'static str = "read";
    const IDEMPOTENT: bool = true;
    type Reply = Books;
    fn handle(self, cx: &mut Context<'_, Account>) -> Result<Books, AccountError> {
        Ok(cx.state().cloned().unwrap_or_default())
    }
}

fn id(s: &str) -> String {
    s.to_string()
}

/// Polls `condition` every 10 ms until it holds, or panics naming `what` after 10 s.
async fn wait_for(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_payment_tells_the_payee_and_publishes_in_the_same_batch_and_a_refusal_causes_nothing() {
    let mut accounts = Harness::<Account>::new().await.unwrap();
    assert_eq!(accounts.ask(id("ann"), Credit(100)).await, Ok(100));
    let pay = |amount| Pay {
        to: id("bob"),
        amount,
    };
    assert_eq!(accounts.ask(id("ann"), pay(30)).await, Ok(70));
    assert_eq!(
        accounts.ask(id("ann"), pay(500)).await,
        Err(AskError::Domain(AccountError::TooLow(70)))
    );
    assert_eq!(
        accounts.told::<Account, Credit>(),
        vec![(id("bob"), Credit(30))],
        "one tell, for the payment that was made"
    );
    let outbox = accounts.outbox().unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].topic, "account.paid");
    assert_eq!(outbox[0].entity, "accounts");
    assert_eq!(outbox[0].key, b"ann".to_vec());
    let paid: Paid = crate::service::decode(&outbox[0].payload).unwrap();
    assert_eq!(paid.amount, 30);

    // The tell reaches bob (delivered here by the harness, as the runtime would).
    assert_eq!(accounts.deliver_to_self().await, Ok(1));
    assert_eq!(accounts.ask(id("bob"), Read).await.unwrap().balance, 30);

    // The outbox survives a crash, and later events are numbered after it.
    accounts.crash().await.unwrap();
    assert_eq!(accounts.ask(id("ann"), pay(20)).await, Ok(50));
    let topics: Vec<u64> = accounts
        .outbox()
        .unwrap()
        .iter()
        .map(|r| crate::service::decode::<Paid>(&r.payload).unwrap().amount)
        .collect();
    assert_eq!(topics, vec![30, 20], "oldest first, nothing overwritten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_command_causes_leaves_before_its_batch_is_durable() {
    let engine = Controlled::new();
    let accounts = Arc::new(
        Harness::<Account>::with_engine(Arc::clone(&engine) as Arc<dyn Engine>)
            .await
            .unwrap(),
    );
    accounts.ask(id("ann"), Credit(10)).await.unwrap();
    let flushes = engine.flushes.load(Ordering::SeqCst);
    let held = Held::new(&engine);
    let pending = {
        let accounts = Arc::clone(&accounts);
        tokio::spawn(async move {
            accounts
                .ask(
                    id("ann"),
                    Pay {
                        to: id("bob"),
                        amount: 4,
                    },
                )
                .await
        })
    };
    wait_for("the payment to reach its flush", async || {
        engine.flushes.load(Ordering::SeqCst) > flushes
    })
    .await;
    let waited = tokio::time::timeout(Duration::from_millis(200), async {
        while accounts.posted().is_empty() && !pending.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_err(), "a tell left before its batch was durable");
    drop(held);
    assert_eq!(pending.await.unwrap(), Ok(6));
    assert_eq!(
        accounts.told::<Account, Credit>(),
        vec![(id("bob"), Credit(4))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_releases_nothing_its_commands_caused() {
    let engine = Controlled::new();
    let accounts = Harness::<Account>::with_engine(Arc::clone(&engine) as Arc<dyn Engine>)
        .await
        .unwrap();
    accounts.ask(id("ann"), Credit(10)).await.unwrap();
    engine.fail.store(true, Ordering::SeqCst);
    let failed = accounts
        .ask(
            id("ann"),
            Pay {
                to: id("bob"),
                amount: 4,
            },
        )
        .await;
    assert!(
        matches!(failed, Err(AskError::Call(crate::CallError::NotDurable(_)))),
        "{failed:?}"
    );
    assert_eq!(
        accounts.posted(),
        Vec::new(),
        "no tell for a batch that failed"
    );
}

#[tokio::test]
async fn an_event_read_back_after_a_crash_keeps_the_trace_of_the_command_that_published_it() {
    let mut accounts = Harness::<Account>::new().await.unwrap();
    accounts.ask(id("ann"), Credit(100)).await.unwrap();
    let trace = crate::telemetry::TraceContext::new_root();
    let pay = Pay {
        to: id("bob"),
        amount: 30,
    };
    crate::telemetry::scope(trace, accounts.ask(id("ann"), pay))
        .await
        .unwrap();
    accounts.crash().await.unwrap();
    // What a relay delivers after a restart is read from here: its deliveries join the trace.
    let outbox = accounts.outbox().unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let kept = outbox[0].trace.map(|t| t.trace_id);
    assert_eq!(kept, Some(trace.trace_id));
}
