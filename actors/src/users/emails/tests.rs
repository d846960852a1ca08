#![allow(clippy::unwrap_used)]

use troupe_runtime::entity::testing::Harness;
use troupe_runtime::entity::{AskError, DomainError, DomainKind};

use super::*;

fn domain<T: std::fmt::Debug>(answer: Result<T, AskError<UserError>>) -> UserError {
    match answer {
        Err(AskError::Domain(e)) => e,
        other => panic!("expected a domain error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_address_is_reserved_confirmed_and_looked_up_even_after_a_crash() {
    let mut emails = Harness::<Emails>::new().await.unwrap();
    let email = "ada@example.com".to_string();
    let ada = Id::new();
    assert_eq!(emails.ask(email.clone(), Lookup).await.unwrap(), None);
    emails
        .ask(email.clone(), Reserve { user_id: ada })
        .await
        .unwrap();
    assert_eq!(emails.ask(email.clone(), Lookup).await.unwrap(), Some(ada));
    emails
        .ask(email.clone(), Confirm { user_id: ada })
        .await
        .unwrap();

    emails.crash().await.unwrap();
    assert_eq!(emails.ask(email.clone(), Lookup).await.unwrap(), Some(ada));
    // Repeats do what the first did.
    emails
        .ask(email.clone(), Reserve { user_id: ada })
        .await
        .unwrap();
    emails
        .ask(email.clone(), Confirm { user_id: ada })
        .await
        .unwrap();
    assert_eq!(emails.ask(email, Lookup).await.unwrap(), Some(ada));
}

#[tokio::test]
async fn a_second_user_cannot_take_a_held_address() {
    let emails = Harness::<Emails>::new().await.unwrap();
    let email = "taken@example.com".to_string();
    let (first, second) = (Id::new(), Id::new());
    emails
        .ask(email.clone(), Reserve { user_id: first })
        .await
        .unwrap();

    let refused = domain(emails.ask(email.clone(), Reserve { user_id: second }).await);
    assert_eq!(refused, UserError::EmailTaken(email.clone()));
    assert_eq!(refused.kind(), DomainKind::Conflict);
    // Nor confirm it, nor release it from under the holder.
    assert_eq!(
        domain(emails.ask(email.clone(), Confirm { user_id: second }).await),
        UserError::EmailTaken(email.clone())
    );
    emails
        .ask(email.clone(), Release { user_id: second })
        .await
        .unwrap();
    assert_eq!(
        emails.ask(email.clone(), Lookup).await.unwrap(),
        Some(first)
    );

    // Confirmed, it is still the first user's.
    emails
        .ask(email.clone(), Confirm { user_id: first })
        .await
        .unwrap();
    assert_eq!(
        domain(emails.ask(email.clone(), Reserve { user_id: second }).await),
        UserError::EmailTaken(email)
    );
}

#[tokio::test]
async fn a_failed_registration_releases_the_address_for_another_user() {
    let emails = Harness::<Emails>::new().await.unwrap();
    let email = "retry@example.com".to_string();
    let (failed, next) = (Id::new(), Id::new());
    emails
        .ask(email.clone(), Reserve { user_id: failed })
        .await
        .unwrap();
    emails
        .ask(email.clone(), Release { user_id: failed })
        .await
        .unwrap();
    assert_eq!(emails.ask(email.clone(), Lookup).await.unwrap(), None);
    // Released again: nothing to do.
    emails
        .ask(email.clone(), Release { user_id: failed })
        .await
        .unwrap();

    emails
        .ask(email.clone(), Reserve { user_id: next })
        .await
        .unwrap();
    // A late repeat of the failed user's release leaves the new holder alone.
    emails
        .ask(email.clone(), Release { user_id: failed })
        .await
        .unwrap();
    assert_eq!(emails.ask(email, Lookup).await.unwrap(), Some(next));
}

#[tokio::test]
async fn a_confirmed_address_cannot_be_released() {
    let emails = Harness::<Emails>::new().await.unwrap();
    let email = "kept@example.com".to_string();
    let user = Id::new();
    emails
        .ask(email.clone(), Reserve { user_id: user })
        .await
        .unwrap();
    emails
        .ask(email.clone(), Confirm { user_id: user })
        .await
        .unwrap();
    let refused = domain(emails.ask(email.clone(), Release { user_id: user }).await);
    assert_eq!(refused, UserError::EmailConfirmed(email.clone()));
    assert_eq!(refused.kind(), DomainKind::Conflict);
    assert_eq!(emails.ask(email, Lookup).await.unwrap(), Some(user));
}

#[tokio::test]
async fn confirming_a_free_address_is_not_found() {
    let emails = Harness::<Emails>::new().await.unwrap();
    let email = "free@example.com".to_string();
    let refused = domain(
        emails
            .ask(email.clone(), Confirm { user_id: Id::new() })
            .await,
    );
    assert_eq!(refused, UserError::EmailNotReserved(email));
    assert_eq!(refused.kind(), DomainKind::NotFound);
}

#[tokio::test]
async fn the_index_is_keyed_by_normalized_addresses_only() {
    let emails = Harness::<Emails>::new().await.unwrap();
    for id in ["Ada@Example.com", " ada@example.com", "not-an-email"] {
        let refused = domain(
            emails
                .ask(id.to_string(), Reserve { user_id: Id::new() })
                .await,
        );
        assert_eq!(refused.kind(), DomainKind::InvalidInput, "{id:?}");
        assert!(refused.to_string().starts_with("email:"), "{refused}");
    }
}

#[tokio::test]
async fn a_fresh_or_confirmed_or_foreign_reservation_is_not_reclaimed() {
    let emails = Harness::<Emails>::new().await.unwrap();
    let email = "stuck@example.com".to_string();
    let (stale, next, other) = (Id::new(), Id::new(), Id::new());
    let reclaim = |stale_user_id| Reclaim {
        user_id: next,
        stale_user_id,
    };
    // Free: reserve it instead.
    assert_eq!(
        domain(emails.ask(email.clone(), reclaim(stale)).await),
        UserError::EmailNotReserved(email.clone())
    );
    emails
        .ask(email.clone(), Reserve { user_id: stale })
        .await
        .unwrap();
    let held = emails.ask(email.clone(), Holder).await.unwrap().unwrap();
    assert_eq!(held.user_id, stale);
    assert!(!held.confirmed);
    // Too recent: the registration may still be under way.
    assert_eq!(
        domain(emails.ask(email.clone(), reclaim(stale)).await),
        UserError::EmailTaken(email.clone())
    );
    // Naming another holder than the real one.
    assert_eq!(
        domain(emails.ask(email.clone(), reclaim(other)).await),
        UserError::EmailTaken(email.clone())
    );
    emails
        .ask(email.clone(), Confirm { user_id: stale })
        .await
        .unwrap();
    let confirmed = emails.ask(email.clone(), Holder).await.unwrap().unwrap();
    let later = confirmed.reserved_at_ms + RECLAIM_AFTER_MS;
    assert!(!confirmed.is_reclaimable(later));
    assert_eq!(
        reclaim(stale).apply(Some(&confirmed), &email, later),
        Err(UserError::EmailTaken(email.clone()))
    );
    assert_eq!(emails.ask(email, Lookup).await.unwrap(), Some(stale));
}

#[tokio::test]
async fn an_old_unconfirmed_reservation_is_reclaimed_once_for_the_new_user() {
    let emails = Harness::<Emails>::new().await.unwrap();
    let email = "stuck@example.com".to_string();
    let (stale, next) = (Id::new(), Id::new());
    emails
        .ask(email.clone(), Reserve { user_id: stale })
        .await
        .unwrap();
    let held = emails.ask(email.clone(), Holder).await.unwrap().unwrap();
    let reclaim = Reclaim {
        user_id: next,
        stale_user_id: stale,
    };

    let just_before = held.reserved_at_ms + RECLAIM_AFTER_MS - 1;
    assert!(!held.is_reclaimable(just_before));
    assert!(reclaim.apply(Some(&held), &email, just_before).is_err());

    let due = held.reserved_at_ms + RECLAIM_AFTER_MS;
    let taken = reclaim.apply(Some(&held), &email, due).unwrap().unwrap();
    assert_eq!(
        taken,
        Reservation {
            user_id: next,
            confirmed: false,
            reserved_at_ms: due
        }
    );
    // A repeat by the new holder changes nothing, even through the entity.
    assert_eq!(reclaim.apply(Some(&taken), &email, due + 1), Ok(None));
    emails
        .ask(email.clone(), Reserve { user_id: next })
        .await
        .ok();
    let stale_again = Reclaim {
        user_id: stale,
        stale_user_id: next,
    };
    assert_eq!(
        stale_again.apply(Some(&taken), &email, due + 1),
        Err(UserError::EmailTaken(email))
    );
}
