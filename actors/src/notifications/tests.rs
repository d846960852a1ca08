#![allow(clippy::unwrap_used)]

use troupe_runtime::entity::AskError;
use troupe_runtime::entity::testing::Harness;

use super::*;
use crate::order_views::tests::order_events;
use crate::orders::{CancelReason, Order};

async fn deliver(inbox: &Harness<Notifications>, event: &Event) -> Option<bool> {
    let (user, apply) = from_order_event(event)?;
    Some(inbox.ask(user, apply).await.unwrap())
}

#[tokio::test]
async fn one_notification_per_order_and_kind_even_on_redelivery() {
    let orders = Harness::<Order>::new().await.unwrap();
    let mut inbox = Harness::<Notifications>::new().await.unwrap();
    let user = Id::new();
    let (confirmed_id, confirmed) = order_events(&orders, user, None, true).await;
    let cancel = CancelReason::OutOfStock;
    let (cancelled_id, cancelled) = order_events(&orders, user, Some(cancel), false).await;

    // order.created makes no notification: the mapping skips it.
    assert_eq!(deliver(&inbox, &confirmed[0]).await, None);
    assert_eq!(deliver(&inbox, &confirmed[1]).await, Some(true));
    assert_eq!(deliver(&inbox, &confirmed[1]).await, Some(false));
    inbox.crash().await.unwrap();
    assert_eq!(deliver(&inbox, &confirmed[1]).await, Some(false));
    assert_eq!(deliver(&inbox, &cancelled[1]).await, Some(true));
    assert_eq!(deliver(&inbox, &cancelled[1]).await, Some(false));

    let list = inbox.ask(user, List { limit: 10 }).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].order_id, cancelled_id);
    assert_eq!(list[0].kind, NotificationKind::OrderCancelled);
    assert!(
        list[0].message.contains("out_of_stock"),
        "{}",
        list[0].message
    );
    assert!(list[0].message.contains(&cancelled_id.to_string()));
    assert_eq!(list[1].order_id, confirmed_id);
    assert_eq!(list[1].kind, NotificationKind::OrderConfirmed);
    assert!(list[1].message.contains("5.00"), "{}", list[1].message);
    assert_ne!(list[0].id, list[1].id);
    assert_eq!(
        list[1].created_at_ms,
        confirmed[1].decode::<OrderEvent>().unwrap().at_ms
    );

    assert_eq!(
        inbox.ask(Id::new(), List { limit: 5 }).await.unwrap(),
        vec![]
    );
    assert_eq!(
        inbox.ask(user, List { limit: 0 }).await,
        Err(AskError::Domain(NotificationError::BadLimit(0)))
    );
}

#[tokio::test]
async fn a_pending_event_applied_directly_makes_nothing() {
    let orders = Harness::<Order>::new().await.unwrap();
    let inbox = Harness::<Notifications>::new().await.unwrap();
    let user = Id::new();
    let (_, events) = order_events(&orders, user, None, false).await;
    let created: OrderEvent = events[0].decode().unwrap();
    assert!(!inbox.ask(user, Apply(created)).await.unwrap());
    assert_eq!(inbox.ask(user, List { limit: 5 }).await.unwrap(), vec![]);
}

#[tokio::test]
async fn the_inbox_is_bounded_and_still_remembers_what_it_told() {
    let inbox = Harness::<Notifications>::new().await.unwrap();
    let user = Id::new();
    let event = |n: u64| OrderEvent {
        order_id: Id::new(),
        user_id: user,
        total_cents: n,
        status: OrderStatus::Confirmed,
        reason: None,
        items: Vec::new(),
        created_at_ms: n,
        at_ms: n,
    };
    let oldest = event(0);
    assert!(inbox.ask(user, Apply(oldest.clone())).await.unwrap());
    for n in 1..=MAX_NOTIFICATIONS as u64 {
        assert!(inbox.ask(user, Apply(event(n))).await.unwrap());
    }
    let list = inbox
        .ask(
            user,
            List {
                limit: MAX_NOTIFICATIONS,
            },
        )
        .await
        .unwrap();
    assert_eq!(list.len(), MAX_NOTIFICATIONS);
    assert!(list.iter().all(|n| n.order_id != oldest.order_id));
    // Dropped from the list, still remembered: no second notification.
    assert!(!inbox.ask(user, Apply(oldest)).await.unwrap());
}
