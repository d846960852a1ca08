#![allow(clippy::unwrap_used)]

use troupe_runtime::entity::testing::Harness;
use troupe_runtime::entity::{AskError, DomainError, DomainKind};
use troupe_runtime::saga::{Abort, Get, Outcome, Report, Start, StepStatus, Work};

use super::*;

fn item(quantity: u64, price_cents: u64) -> OrderItem {
    OrderItem {
        product_id: Id::new(),
        quantity,
        price_cents,
    }
}

fn place(user_id: Id, items: Vec<OrderItem>) -> Start<Place> {
    Start(Place {
        user_id,
        items,
        idempotency_key: Some("key-1".into()),
        fingerprint: "body-hash-1".into(),
    })
}

fn topics(orders: &Harness<Order>) -> Vec<String> {
    orders
        .outbox()
        .unwrap()
        .into_iter()
        .map(|r| r.topic)
        .collect()
}

#[tokio::test]
async fn placing_starts_the_saga_with_its_steps_and_publishes_the_order() {
    let orders = Harness::<Order>::new().await.unwrap();
    let (id, user) = (Id::new(), Id::new());
    let items = vec![item(2, 450), item(1, 1000)];
    let started = orders.ask(id, place(user, items.clone())).await.unwrap();
    assert!(started.new);
    let order = OrderState::of(id, &started.state);
    assert_eq!(
        (order.total_cents, order.status),
        (1900, OrderStatus::Pending)
    );
    let names: Vec<String> = started
        .state
        .steps
        .iter()
        .map(|s| s.spec.name.clone())
        .collect();
    let mut sorted = items.clone();
    sorted.sort_by_key(|i| i.product_id.0);
    assert_eq!(names[0], format!("reserve:{}", sorted[0].product_id));
    assert_eq!(names[2], "charge");
    assert_eq!(names.len(), 5);
    assert!(
        !started.state.steps[3].spec.compensable,
        "commits are final"
    );
    assert_eq!(
        started.state.steps[0].status,
        StepStatus::Running,
        "sent at once"
    );
    assert_eq!(topics(&orders), [CREATED]);
    // The first step went to the runner, and its watchdog is armed on disk.
    assert_eq!(orders.posted().len(), 1);
    assert_eq!(orders.timers().unwrap().len(), 1);
}

#[tokio::test]
async fn placing_again_is_the_same_order_and_another_body_is_a_conflict() {
    let orders = Harness::<Order>::new().await.unwrap();
    let (id, user) = (Id::new(), Id::new());
    let items = vec![item(2, 450), item(1, 1000)];
    orders.ask(id, place(user, items.clone())).await.unwrap();
    let mut reversed = items.clone();
    reversed.reverse();
    let again = orders.ask(id, place(user, reversed)).await.unwrap();
    assert!(!again.new, "same lines in another order: the same request");
    let other = orders.ask(id, place(user, vec![item(1, 1)])).await;
    match other {
        Err(AskError::Domain(e)) => assert_eq!(e, OrderError::KeyReused(id)),
        other => panic!("{other:?}"),
    }
    assert_eq!(topics(&orders), [CREATED], "started once");
}

#[tokio::test]
async fn placing_names_the_bad_field_and_publishes_nothing() {
    let orders = Harness::<Order>::new().await.unwrap();
    let user = Id::new();
    let twice = item(1, 1);
    let cases = [
        (vec![], "items", DomainKind::InvalidInput),
        (
            vec![item(1, 1), item(0, 1)],
            "items[1].quantity",
            DomainKind::Unprocessable,
        ),
        (
            vec![item(1001, 1)],
            "items[0].quantity",
            DomainKind::InvalidInput,
        ),
        (
            vec![item(1, 0)],
            "items[0].price_cents",
            DomainKind::Unprocessable,
        ),
        (
            vec![twice.clone(), twice],
            "items[1].product_id",
            DomainKind::InvalidInput,
        ),
        (
            vec![item(1000, u64::MAX / 10)],
            "items",
            DomainKind::Unprocessable,
        ),
    ];
    for (items, field, expected) in cases {
        match orders.ask(Id::new(), place(user, items)).await {
            Err(AskError::Domain(e)) => {
                assert_eq!(e.kind(), expected, "{e}");
                assert!(e.to_string().starts_with(&format!("{field}:")), "{e}");
            }
            other => panic!("expected {field} refused, got {other:?}"),
        }
    }
    assert!(topics(&orders).is_empty(), "refusals publish nothing");
}

#[tokio::test]
async fn a_refused_charge_undoes_the_reservations_and_cancels_with_its_reason() {
    let mut orders = Harness::<Order>::new().await.unwrap();
    let (id, user) = (Id::new(), Id::new());
    orders
        .ask(id, place(user, vec![item(1, 100)]))
        .await
        .unwrap();
    let report = |work, outcome| Report {
        work,
        attempt: 1,
        outcome,
    };
    orders
        .ask(id, report(Work::Act(0), Outcome::Done))
        .await
        .unwrap();
    orders.crash().await.unwrap();
    let declined = Outcome::Refused("payment_declined".into());
    orders
        .ask(id, report(Work::Act(1), declined))
        .await
        .unwrap();
    let state = orders.ask(id, Get).await.unwrap();
    assert_eq!(
        state.work(),
        Some(Work::Compensate(0)),
        "the reservation is released"
    );
    assert_eq!(OrderState::of(id, &state).status, OrderStatus::Pending);
    orders
        .ask(id, report(Work::Compensate(0), Outcome::Done))
        .await
        .unwrap();
    let state = orders.ask(id, Get).await.unwrap();
    assert_eq!(
        OrderState::of(id, &state).status,
        OrderStatus::Cancelled {
            reason: CancelReason::PaymentDeclined
        }
    );
    assert_eq!(topics(&orders), [CREATED, CANCELLED]);
    // An abort now changes nothing; a late report neither.
    orders
        .ask(
            id,
            Abort {
                reason: "cancelled_by_user".into(),
            },
        )
        .await
        .unwrap();
    orders
        .ask(id, report(Work::Act(2), Outcome::Done))
        .await
        .unwrap();
    assert_eq!(topics(&orders), [CREATED, CANCELLED]);
}

#[tokio::test]
async fn a_users_cancel_is_refused_once_the_payment_is_taken() {
    let orders = Harness::<Order>::new().await.unwrap();
    let (id, user) = (Id::new(), Id::new());
    orders
        .ask(id, place(user, vec![item(1, 100)]))
        .await
        .unwrap();
    for n in 0..2 {
        let done = Report {
            work: Work::Act(n),
            attempt: 1,
            outcome: Outcome::Done,
        };
        orders.ask(id, done).await.unwrap();
    }
    let cancel = orders
        .ask(
            id,
            Abort {
                reason: "cancelled_by_user".into(),
            },
        )
        .await;
    match cancel {
        Err(AskError::Domain(e)) => assert_eq!(e.kind(), DomainKind::Conflict, "{e}"),
        other => panic!("{other:?}"),
    }
    let commit = Report {
        work: Work::Act(2),
        attempt: 1,
        outcome: Outcome::Done,
    };
    orders.ask(id, commit).await.unwrap();
    let state = orders.ask(id, Get).await.unwrap();
    assert_eq!(OrderState::of(id, &state).status, OrderStatus::Confirmed);
    assert_eq!(topics(&orders), [CREATED, CONFIRMED]);
}
