#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use proptest::prelude::*;
use troupe_runtime::entity::testing::Harness;
use troupe_runtime::entity::{AskError, DomainError, DomainKind};
use troupe_runtime::events::Topic;

use super::ledger::{MAX_BALANCE_CENTS, MAX_KEYS};
use super::*;
use crate::recent::MemoryBook;
use crate::users::{Create, Role, User};

fn domain<T: std::fmt::Debug>(answer: Result<T, AskError<PaymentError>>) -> PaymentError {
    match answer {
        Err(AskError::Domain(e)) => e,
        other => panic!("expected a domain error, got {other:?}"),
    }
}

fn charge(key: &str, amount_cents: u64) -> Charge {
    Charge {
        key: key.into(),
        amount_cents,
    }
}

fn refund(key: &str) -> Refund {
    Refund { key: key.into() }
}

async fn opened(balance: u64) -> (Harness<Wallet>, Id) {
    let wallets = Harness::<Wallet>::new().await.unwrap();
    let id = Id::new();
    let open = Open {
        opening_balance_cents: balance,
    };
    assert_eq!(wallets.ask(id, open).await.unwrap(), balance);
    (wallets, id)
}

#[tokio::test]
async fn a_wallet_opens_once_and_a_wallet_never_opened_is_not_found() {
    let (wallets, id) = opened(500).await;
    wallets.ask(id, charge("k", 200)).await.unwrap();
    // Opening again changes nothing and answers what it holds.
    let again = Open {
        opening_balance_cents: 9_999,
    };
    assert_eq!(wallets.ask(id, again).await.unwrap(), 300);
    assert_eq!(wallets.ask(id, Balance).await.unwrap(), 300);

    let never = Id::new();
    for answer in [
        wallets.ask(never, Balance).await.map(|_| ()),
        wallets
            .ask(never, Deposit { amount_cents: 1 })
            .await
            .map(|_| ()),
        wallets.ask(never, charge("k", 1)).await.map(|_| ()),
        wallets.ask(never, refund("k")).await.map(|_| ()),
    ] {
        let refused = domain(answer);
        assert_eq!(refused, PaymentError::NotFound(never));
        assert_eq!(refused.kind(), DomainKind::NotFound);
    }
    let too_much = Open {
        opening_balance_cents: MAX_BALANCE_CENTS + 1,
    };
    let refused = domain(wallets.ask(never, too_much).await);
    assert_eq!(refused.kind(), DomainKind::InvalidInput);
    assert!(refused.to_string().starts_with("opening_balance_cents:"));
}

#[tokio::test]
async fn deposits_add_and_zero_is_refused_naming_the_field() {
    let (wallets, id) = opened(0).await;
    assert_eq!(
        wallets
            .ask(id, Deposit { amount_cents: 250 })
            .await
            .unwrap(),
        250
    );
    assert_eq!(
        wallets.ask(id, Deposit { amount_cents: 50 }).await.unwrap(),
        300
    );
    let refused = domain(wallets.ask(id, Deposit { amount_cents: 0 }).await);
    assert_eq!(refused.kind(), DomainKind::InvalidInput);
    assert!(
        refused.to_string().starts_with("amount_cents:"),
        "{refused}"
    );
    let over = Deposit {
        amount_cents: MAX_BALANCE_CENTS,
    };
    assert_eq!(
        domain(wallets.ask(id, over).await),
        PaymentError::BalanceLimit { wallet: id }
    );
    assert_eq!(wallets.ask(id, Balance).await.unwrap(), 300);
}

#[tokio::test]
async fn a_charge_over_the_balance_is_declined_and_takes_nothing() {
    let (wallets, id) = opened(1_000).await;
    let receipt = wallets.ask(id, charge("order-1", 600)).await.unwrap();
    assert_eq!(receipt.balance_cents, 400);
    let declined = domain(wallets.ask(id, charge("order-2", 401)).await);
    assert_eq!(
        declined,
        PaymentError::Declined {
            wallet: id,
            balance_cents: 400,
            amount_cents: 401
        }
    );
    assert_eq!(declined.kind(), DomainKind::Unprocessable);
    assert_eq!(wallets.ask(id, Balance).await.unwrap(), 400);
    // Exactly the balance is fine, down to zero.
    assert_eq!(
        wallets
            .ask(id, charge("order-3", 400))
            .await
            .unwrap()
            .balance_cents,
        0
    );
    for (key, amount, field) in [("k", 0, "amount_cents"), ("", 1, "key")] {
        let refused = domain(wallets.ask(id, charge(key, amount)).await);
        assert_eq!(refused.kind(), DomainKind::InvalidInput);
        assert!(refused.to_string().starts_with(field), "{refused}");
    }
    let long_key = "k".repeat(ledger::MAX_KEY_BYTES + 1);
    let refused = domain(wallets.ask(id, charge(&long_key, 1)).await);
    assert!(refused.to_string().starts_with("key:"), "{refused}");
}

#[tokio::test]
async fn the_same_charge_key_charges_once_even_across_a_crash() {
    let (mut wallets, id) = opened(1_000).await;
    let first = wallets
        .ask(id, charge("order-7/charge", 300))
        .await
        .unwrap();
    assert_eq!(
        wallets.ask(id, Deposit { amount_cents: 5 }).await.unwrap(),
        705
    );
    // The repeat answers the first receipt, and takes nothing.
    assert_eq!(
        wallets
            .ask(id, charge("order-7/charge", 300))
            .await
            .unwrap(),
        first
    );
    wallets.crash().await.unwrap();
    assert_eq!(
        wallets
            .ask(id, charge("order-7/charge", 300))
            .await
            .unwrap(),
        first
    );
    assert_eq!(wallets.ask(id, Balance).await.unwrap(), 705);

    let reused = domain(wallets.ask(id, charge("order-7/charge", 301)).await);
    assert_eq!(
        reused,
        PaymentError::KeyReused {
            key: "order-7/charge".into(),
            amount_cents: 300
        }
    );
    assert_eq!(reused.kind(), DomainKind::Conflict);
    assert_eq!(wallets.ask(id, Balance).await.unwrap(), 705);
}

#[tokio::test]
async fn a_charge_is_refunded_once_and_an_unknown_one_is_voided() {
    let (mut wallets, id) = opened(1_000).await;
    wallets.ask(id, charge("order-9", 400)).await.unwrap();
    let refunded = wallets.ask(id, refund("order-9")).await.unwrap();
    assert_eq!(
        refunded,
        Receipt {
            key: "order-9".into(),
            amount_cents: 400,
            balance_cents: 1_000
        }
    );
    wallets.crash().await.unwrap();
    assert_eq!(wallets.ask(id, refund("order-9")).await.unwrap(), refunded);
    assert_eq!(wallets.ask(id, Balance).await.unwrap(), 1_000);
    // A refunded charge asked again is still the one charge: nothing taken.
    assert_eq!(
        wallets
            .ask(id, charge("order-9", 400))
            .await
            .unwrap()
            .balance_cents,
        600
    );
    assert_eq!(wallets.ask(id, Balance).await.unwrap(), 1_000);

    // Refunding a charge that was never made voids its key: nothing is given back, and the
    // charge, if it arrives later (a saga's compensation overtook it), is refused.
    let void = wallets.ask(id, refund("never")).await.unwrap();
    assert_eq!((void.amount_cents, void.balance_cents), (0, 1_000));
    let late = domain(wallets.ask(id, charge("never", 100)).await);
    assert_eq!(
        late,
        PaymentError::KeyVoided {
            key: "never".into()
        }
    );
    assert_eq!(late.kind(), DomainKind::Conflict);
    assert_eq!(wallets.ask(id, refund("never")).await.unwrap(), void);
    // A declined charge left nothing to give back: its refund voids it too.
    let _ = domain(wallets.ask(id, charge("too-big", 5_000)).await);
    assert_eq!(
        wallets
            .ask(id, refund("too-big"))
            .await
            .unwrap()
            .amount_cents,
        0
    );
    assert_eq!(wallets.ask(id, Balance).await.unwrap(), 1_000);
}

#[tokio::test]
async fn a_user_created_event_opens_the_wallet_with_the_opening_balance() {
    // The event as published by a user's creation, read back from that shard's outbox.
    let users = Harness::<User>::new().await.unwrap();
    let user = Id::new();
    let create = Create {
        email: "w@x.io".into(),
        name: "W".into(),
        password_hash: "h".into(),
        role: Role::User,
    };
    users.ask(user, create).await.unwrap();
    let record = users.outbox().unwrap().remove(0);
    let event = Event {
        id: record.event,
        topic: Topic::parse(&record.topic).unwrap(),
        source: record.entity,
        key: record.key,
        payload: record.payload,
        at_ms: record.at_ms,
    };

    let (id, open) = open_on_user_created(&event).unwrap();
    assert_eq!(id, user);
    assert_eq!(open.opening_balance_cents, OPENING_BALANCE_DEFAULT);
    let (_, configured) = open_command(&event, 42).unwrap();
    assert_eq!(configured.opening_balance_cents, 42);

    let wallets = Harness::<Wallet>::new().await.unwrap();
    wallets.ask(id, open.clone()).await.unwrap();
    // Delivered twice, it opens once.
    wallets.ask(id, charge("k", 1)).await.unwrap();
    wallets.ask(id, open).await.unwrap();
    assert_eq!(
        wallets.ask(id, Balance).await.unwrap(),
        OPENING_BALANCE_DEFAULT - 1
    );

    // Other topics and payloads are skipped.
    let mut other = event.clone();
    other.topic = Topic::parse("order.created").unwrap();
    assert_eq!(open_on_user_created(&other), None);
    let mut garbage = event;
    garbage.payload = vec![0xff; 3];
    assert_eq!(open_on_user_created(&garbage), None);
}

#[test]
fn the_keys_kept_are_bounded_and_the_newest_are_kept() {
    let wallet = Id::new();
    let mut ledger = Ledger::open(u64::try_from(MAX_KEYS).unwrap() * 3, 0).unwrap();
    let mut book = MemoryBook::default();
    for n in 0..MAX_KEYS + 10 {
        ledger
            .charge(&mut book, wallet, &format!("k{n}"), 1)
            .unwrap();
    }
    assert_eq!(ledger.num_keys(), MAX_KEYS as u64);
    // A record and its number per key: nothing forgotten lingers.
    assert_eq!(book.len(), 2 * MAX_KEYS);
    let balance = ledger.balance_cents;
    // The newest key still answers its receipt without charging.
    let last = format!("k{}", MAX_KEYS + 9);
    ledger.charge(&mut book, wallet, &last, 1).unwrap();
    assert_eq!(ledger.balance_cents, balance);
    // The oldest is forgotten (documented: 10,000 charges ago): its refund gives nothing back.
    assert_eq!(
        ledger.refund(&mut book, wallet, "k0").unwrap().amount_cents,
        0
    );
    ledger.refund(&mut book, wallet, &last).unwrap();
    assert_eq!(ledger.balance_cents, balance + 1);
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Op {
    Deposit(u64),
    Charge(u8, u64),
    Refund(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2_000u64).prop_map(Op::Deposit),
        (0..8u8, 0..3_000u64).prop_map(|(k, a)| Op::Charge(k, a)),
        (0..8u8).prop_map(Op::Refund),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any history of deposits, charges and refunds keeps the balance at or above zero and
    /// equal to a model that applies each charge key once and refunds it at most once.
    #[test]
    fn the_balance_follows_the_model_and_never_goes_below_zero(
        opening in 0..5_000u64,
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let wallet = Id::new();
        let mut ledger = Ledger::open(opening, 0).unwrap();
        let mut book = MemoryBook::default();
        let mut balance = i128::from(opening);
        // key -> (amount, refunded); a refund of an unknown key voids it: (0, true)
        let mut charges: HashMap<String, (u64, bool)> = HashMap::new();
        for op in ops {
            match op {
                Op::Deposit(amount) => {
                    let answer = ledger.deposit(wallet, amount);
                    if amount == 0 {
                        prop_assert!(answer.is_err());
                    } else {
                        balance += i128::from(amount);
                        prop_assert_eq!(answer.map(i128::from), Ok(balance));
                    }
                }
                Op::Charge(key, amount) => {
                    let key = format!("k{key}");
                    let answer = ledger.charge(&mut book, wallet, &key, amount);
                    match charges.get(&key) {
                        _ if amount == 0 => prop_assert!(answer.is_err()),
                        Some((0, true)) => {
                            prop_assert_eq!(answer.unwrap_err().kind(), DomainKind::Conflict);
                        }
                        Some((first, _)) if *first != amount => {
                            prop_assert_eq!(answer.unwrap_err().kind(), DomainKind::Conflict);
                        }
                        Some(_) => prop_assert!(answer.is_ok()),
                        None if i128::from(amount) > balance => {
                            let kind = answer.unwrap_err().kind();
                            prop_assert_eq!(kind, DomainKind::Unprocessable);
                        }
                        None => {
                            balance -= i128::from(amount);
                            charges.insert(key, (amount, false));
                            prop_assert_eq!(answer.map(|r| i128::from(r.balance_cents)), Ok(balance));
                        }
                    }
                }
                Op::Refund(key) => {
                    let key = format!("k{key}");
                    let answer = ledger.refund(&mut book, wallet, &key);
                    match charges.get_mut(&key) {
                        None => {
                            charges.insert(key, (0, true));
                            prop_assert_eq!(answer.map(|r| r.amount_cents), Ok(0));
                        }
                        Some((_, true)) => prop_assert!(answer.is_ok()),
                        Some((amount, refunded)) => {
                            *refunded = true;
                            balance += i128::from(*amount);
                            prop_assert_eq!(answer.map(|r| i128::from(r.balance_cents)), Ok(balance));
                        }
                    }
                }
            }
            prop_assert!(balance >= 0);
            prop_assert_eq!(i128::from(ledger.balance_cents), balance);
        }
    }
}

/// One step of a random history through the entity, crashes included.
#[derive(Debug, Clone)]
enum Step {
    Op(Op),
    Crash,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => op().prop_map(Step::Op),
        1 => Just(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The entity over a real store agrees with the ledger's plain functions, whatever the
    /// history and wherever it crashes: each answer and each balance.
    #[test]
    fn the_wallet_entity_agrees_with_its_ledger_across_crashes(
        opening in 0..5_000u64,
        steps in proptest::collection::vec(step(), 0..25),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut wallets = Harness::<Wallet>::new().await.unwrap();
            let id = Id::new();
            wallets.ask(id, Open { opening_balance_cents: opening }).await.unwrap();
            let mut model = Ledger::open(opening, 0).unwrap();
            let mut book = MemoryBook::default();
            for step in steps {
                match step {
                    Step::Crash => wallets.crash().await.unwrap(),
                    Step::Op(Op::Deposit(amount)) => {
                        let answer = wallets.ask(id, Deposit { amount_cents: amount }).await;
                        prop_assert_eq!(answer.map_err(|e| e.domain().cloned()), model.deposit(id, amount).map_err(Some));
                    }
                    Step::Op(Op::Charge(key, amount)) => {
                        let key = format!("k{key}");
                        let answer = wallets.ask(id, charge(&key, amount)).await;
                        prop_assert_eq!(answer.map_err(|e| e.domain().cloned()), model.charge(&mut book, id, &key, amount).map_err(Some));
                    }
                    Step::Op(Op::Refund(key)) => {
                        let key = format!("k{key}");
                        let answer = wallets.ask(id, refund(&key)).await;
                        prop_assert_eq!(answer.map_err(|e| e.domain().cloned()), model.refund(&mut book, id, &key).map_err(Some));
                    }
                }
                prop_assert_eq!(wallets.ask(id, Balance).await.unwrap(), model.balance_cents);
            }
            Ok(())
        })?;
    }
}
