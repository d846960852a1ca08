#![allow(clippy::unwrap_used)]

use troupe_runtime::entity::testing::Harness;
use troupe_runtime::entity::{AskError, DomainError, DomainKind};

use super::*;

fn item(quantity: u64, price_cents: u64) -> OrderItem {
    OrderItem {
        product_id: Id::new(),
        quantity,
        price_cents,
    }
}

fn place(user_id: Id, items: Vec<OrderItem>) -> Place {
    Place {
        user_id,
        items,
        idempotency_key: Some("key-1".into()),
        fingerprint: "body-hash-1".into(),
    }
}

fn kind<T: std::fmt::Debug>(result: Result<T, AskError<OrderError>>) -> DomainKind {
    match result {
        Err(AskError::Domain(e)) => e.kind(),
        other => panic!("expected a domain error, got {other:?}"),
    }
}

fn events(orders: &Harness<Order>) -> Vec<(String, OrderEvent)> {
    orders
        .outbox()
        .unwrap()
        .into_iter()
        .map(|r| {
            let event = troupe_runtime::events::Event {
                id: r.event,
                topic: r.topic.parse().unwrap(),
                source: r.entity,
                key: r.key,
                payload: r.payload,
                at_ms: r.at_ms,
            };
            (event.topic.to_string(), event.decode().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn an_order_is_placed_with_its_total_and_read_back() {
    let orders = Harness::<Order>::new().await.unwrap();
    let (id, user) = (Id::new(), Id::new());
    let items = vec![item(2, 450), item(1, 1000)];
    let placed = orders.ask(id, place(user, items.clone())).await.unwrap();
    assert!(placed.new);
    assert_eq!(placed.order.total_cents, 1900);
    assert_eq!(placed.order.status, OrderStatus::Pending);
    assert_eq!(placed.order.items, items);
    assert_eq!(orders.ask(id, Get).await.unwrap(), placed.order);
    assert_eq!(kind(orders.ask(Id::new(), Get).await), DomainKind::NotFound);

    let outbox = events(&orders);
    assert_eq!(outbox.len(), 1);
    let (topic, event) = &outbox[0];
    assert_eq!(topic, CREATED);
    assert_eq!(event.order_id, id);
    assert_eq!(event.user_id, user);
    assert_eq!(event.total_cents, 1900);
    assert_eq!(event.status, OrderStatus::Pending);
    assert_eq!(event.items, items);
    assert_eq!(event.reason, None);
}

#[tokio::test]
async fn placing_names_the_bad_field() {
    let orders = Harness::<Order>::new().await.unwrap();
    let user = Id::new();
    let twice = item(1, 1);
    let cases = [
        (vec![], "items", DomainKind::InvalidInput),
        (
            (0..21).map(|_| item(1, 1)).collect(),
            "items",
            DomainKind::InvalidInput,
        ),
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
    // Twenty items of a thousand units are fine.
    let most = (0..20).map(|_| item(1000, 1)).collect();
    assert_eq!(
        orders
            .ask(Id::new(), place(user, most))
            .await
            .unwrap()
            .order
            .total_cents,
        20_000
    );
    assert!(
        orders.outbox().unwrap().len() == 1,
        "refusals publish nothing"
    );
}

#[tokio::test]
async fn the_same_request_again_answers_the_same_order_and_another_is_a_conflict() {
    let mut orders = Harness::<Order>::new().await.unwrap();
    let (id, user) = (Id::new(), Id::new());
    let items = vec![item(2, 450)];
    let first = orders.ask(id, place(user, items.clone())).await.unwrap();
    orders.crash().await.unwrap();
    let again = orders.ask(id, place(user, items.clone())).await.unwrap();
    assert!(!again.new);
    assert_eq!(again.order, first.order);
    assert_eq!(
        orders.outbox().unwrap().len(),
        1,
        "placed once, published once"
    );

    let other_body = Place {
        fingerprint: "body-hash-2".into(),
        ..place(user, items.clone())
    };
    assert_eq!(
        orders.ask(id, other_body).await,
        Err(AskError::Domain(OrderError::KeyReused(id)))
    );
    let other_items = place(user, vec![item(2, 450)]);
    assert_eq!(
        kind(orders.ask(id, other_items).await),
        DomainKind::Conflict
    );
    let other_user = place(Id::new(), items);
    assert_eq!(kind(orders.ask(id, other_user).await), DomainKind::Conflict);
}

#[tokio::test]
async fn an_order_is_confirmed_once_and_then_cannot_be_cancelled() {
    let mut orders = Harness::<Order>::new().await.unwrap();
    let (id, user) = (Id::new(), Id::new());
    orders
        .ask(id, place(user, vec![item(1, 300)]))
        .await
        .unwrap();
    let confirmed = orders.ask(id, Confirm).await.unwrap();
    assert_eq!(confirmed.status, OrderStatus::Confirmed);
    assert!(confirmed.updated_at_ms >= confirmed.created_at_ms);
    orders.crash().await.unwrap();
    assert_eq!(orders.ask(id, Confirm).await.unwrap(), confirmed);
    assert_eq!(
        kind(
            orders
                .ask(
                    id,
                    Cancel {
                        reason: CancelReason::CancelledByUser
                    }
                )
                .await
        ),
        DomainKind::Conflict
    );
    assert_eq!(orders.ask(id, Get).await.unwrap(), confirmed);
    let outbox = events(&orders);
    let topics: Vec<&str> = outbox.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, [CREATED, CONFIRMED]);
    let (_, event) = &outbox[1];
    assert_eq!(event.status, OrderStatus::Confirmed);
    assert_eq!(event.total_cents, 300);
    assert_eq!(event.user_id, user);
    assert!(event.items.is_empty());
    assert_eq!(
        kind(orders.ask(Id::new(), Confirm).await),
        DomainKind::NotFound
    );
}

#[tokio::test]
async fn an_order_is_cancelled_once_keeping_its_first_reason() {
    let orders = Harness::<Order>::new().await.unwrap();
    let (id, user) = (Id::new(), Id::new());
    orders
        .ask(id, place(user, vec![item(1, 300)]))
        .await
        .unwrap();
    let out_of_stock = Cancel {
        reason: CancelReason::OutOfStock,
    };
    let cancelled = orders.ask(id, out_of_stock.clone()).await.unwrap();
    assert_eq!(
        cancelled.status,
        OrderStatus::Cancelled {
            reason: CancelReason::OutOfStock
        }
    );
    assert_eq!(orders.ask(id, out_of_stock).await.unwrap(), cancelled);
    let by_user = Cancel {
        reason: CancelReason::CancelledByUser,
    };
    assert_eq!(orders.ask(id, by_user).await.unwrap(), cancelled);
    assert_eq!(kind(orders.ask(id, Confirm).await), DomainKind::Conflict);

    let outbox = events(&orders);
    let topics: Vec<&str> = outbox.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, [CREATED, CANCELLED]);
    assert_eq!(outbox[1].1.reason, Some(CancelReason::OutOfStock));
    assert_eq!(outbox[1].1.topic(), CANCELLED);
}
