#![allow(clippy::unwrap_used)]

use troupe_runtime::entity::testing::Harness;
use troupe_runtime::entity::{AskError, OutboxRecord};

use super::*;
use troupe_runtime::saga::{Outcome, Report, Start, Work};

use crate::orders::{CancelReason, Order, OrderItem, Place};

/// An event as the bus hands it over, from an order's outbox record.
pub(crate) fn event_of(record: OutboxRecord) -> Event {
    Event {
        id: record.event,
        topic: record.topic.parse().unwrap(),
        source: record.entity,
        key: record.key,
        payload: record.payload,
        at_ms: record.at_ms,
    }
}

/// Places an order for `user` and carries its saga to a cancel for `end` (its first step
/// refused with that reason) or, if `confirm`, through every step: its events, in order.
pub(crate) async fn order_events(
    orders: &Harness<Order>,
    user: Id,
    end: Option<CancelReason>,
    confirm: bool,
) -> (Id, Vec<Event>) {
    let id = Id::new();
    let before = orders.outbox().unwrap().len();
    let place = Place {
        user_id: user,
        items: vec![OrderItem {
            product_id: Id::new(),
            quantity: 2,
            price_cents: 250,
        }],
        idempotency_key: None,
        fingerprint: "f".into(),
    };
    orders.ask(id, Start(place)).await.unwrap();
    let report = |n: usize, outcome: Outcome| Report {
        work: Work::Act(n),
        attempt: 1,
        outcome,
    };
    if confirm {
        // Reserve, charge, commit.
        for n in 0..3 {
            orders.ask(id, report(n, Outcome::Done)).await.unwrap();
        }
    }
    if let Some(reason) = end {
        let refused = report(0, Outcome::Refused(reason.as_str().to_string()));
        orders.ask(id, refused).await.unwrap();
    }
    let events = orders.outbox().unwrap()[before..]
        .iter()
        .cloned()
        .map(event_of)
        .collect();
    (id, events)
}

async fn deliver(views: &Harness<OrderViews>, event: &Event) {
    let (user, apply) = from_order_event(event).unwrap();
    views.ask(user, apply).await.unwrap();
}

#[tokio::test]
async fn a_users_orders_follow_their_events_newest_first() {
    let orders = Harness::<Order>::new().await.unwrap();
    let views = Harness::<OrderViews>::new().await.unwrap();
    let user = Id::new();
    let (first, confirmed) = order_events(&orders, user, None, true).await;
    let cancel = CancelReason::PaymentDeclined;
    let (second, cancelled) = order_events(&orders, user, Some(cancel), false).await;
    let (third, pending) = order_events(&orders, user, None, false).await;
    for event in confirmed.iter().chain(&cancelled).chain(&pending) {
        deliver(&views, event).await;
    }
    let list = views.ask(user, List { limit: 10 }).await.unwrap();
    let ids: Vec<Id> = list.iter().map(|o| o.id).collect();
    assert_eq!(ids, [third, second, first]);
    assert_eq!(list[0].status, OrderStatus::Pending);
    assert_eq!(
        list[1].status,
        OrderStatus::Cancelled {
            reason: CancelReason::PaymentDeclined
        }
    );
    assert_eq!(list[2].status, OrderStatus::Confirmed);
    assert!(list.iter().all(|o| o.total_cents == 500));
    assert_eq!(views.ask(user, List { limit: 1 }).await.unwrap().len(), 1);
    assert_eq!(
        views.ask(Id::new(), List { limit: 10 }).await.unwrap(),
        vec![]
    );
    assert_eq!(
        views.ask(user, List { limit: 0 }).await,
        Err(AskError::Domain(ViewError::BadLimit(0)))
    );
}

#[tokio::test]
async fn duplicates_and_late_events_do_not_regress_a_status() {
    let orders = Harness::<Order>::new().await.unwrap();
    let mut views = Harness::<OrderViews>::new().await.unwrap();
    let user = Id::new();
    let (id, events) = order_events(&orders, user, None, true).await;
    let [created, confirmed] = [&events[0], &events[1]];
    // Confirmed first, then created (late), then both again after a crash.
    deliver(&views, confirmed).await;
    deliver(&views, created).await;
    views.crash().await.unwrap();
    deliver(&views, created).await;
    deliver(&views, confirmed).await;
    let list = views.ask(user, List { limit: 10 }).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].status, OrderStatus::Confirmed);

    // A cancellation heard after a confirmation (which cannot happen to one order) does
    // not overwrite the first final status.
    let mut late = confirmed.decode::<OrderEvent>().unwrap();
    late.status = OrderStatus::Cancelled {
        reason: CancelReason::OutOfStock,
    };
    views.ask(user, Apply(late)).await.unwrap();
    let list = views.ask(user, List { limit: 10 }).await.unwrap();
    assert_eq!(list[0].status, OrderStatus::Confirmed);
}

#[tokio::test]
async fn the_view_keeps_the_newest_orders() {
    let views = Harness::<OrderViews>::new().await.unwrap();
    let user = Id::new();
    let event = |n: u64| OrderEvent {
        order_id: Id::new(),
        user_id: user,
        total_cents: n,
        status: OrderStatus::Pending,
        reason: None,
        items: Vec::new(),
        created_at_ms: n,
        at_ms: n,
    };
    let oldest = event(0);
    views.ask(user, Apply(oldest.clone())).await.unwrap();
    for n in 1..=MAX_ORDERS as u64 {
        views.ask(user, Apply(event(n))).await.unwrap();
    }
    let list = views.ask(user, List { limit: MAX_ORDERS }).await.unwrap();
    assert_eq!(list.len(), MAX_ORDERS);
    assert_eq!(list[0].created_at_ms, MAX_ORDERS as u64);
    assert!(list.iter().all(|o| o.id != oldest.order_id));
    // A late event of a dropped order does not bring it back.
    let mut confirmed = oldest;
    confirmed.status = OrderStatus::Confirmed;
    views.ask(user, Apply(confirmed.clone())).await.unwrap();
    let list = views.ask(user, List { limit: MAX_ORDERS }).await.unwrap();
    assert!(list.iter().all(|o| o.id != confirmed.order_id));
}

#[tokio::test]
async fn the_mapping_keys_by_user_and_skips_other_topics() {
    let orders = Harness::<Order>::new().await.unwrap();
    let user = Id::new();
    let (id, events) = order_events(&orders, user, None, true).await;
    for event in &events {
        let (to, Apply(applied)) = from_order_event(event).unwrap();
        assert_eq!(to, user);
        assert_eq!(applied.order_id, id);
        assert_eq!(applied.topic(), event.topic.as_str());
    }
    let mut other = events[0].clone();
    other.topic = "user.created".parse().unwrap();
    assert!(from_order_event(&other).is_none());
    let mut garbled = events[1].clone();
    garbled.payload = vec![0xff; 3];
    assert!(from_order_event(&garbled).is_none());
}
