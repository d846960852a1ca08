#![allow(clippy::unwrap_used)]

use troupe_runtime::entity::testing::Harness;
use troupe_runtime::entity::{AskError, DomainError, DomainKind};

use super::*;

fn create(email: &str, name: &str) -> Create {
    Create {
        email: email.into(),
        name: name.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role: Role::User,
    }
}

/// The field an `InvalidInput` refusal names.
fn refused_field<T: std::fmt::Debug>(answer: Result<T, AskError<UserError>>) -> String {
    match answer {
        Err(AskError::Domain(e @ UserError::Invalid { .. })) => {
            assert_eq!(e.kind(), DomainKind::InvalidInput);
            let UserError::Invalid { field, .. } = e else {
                unreachable!()
            };
            field
        }
        other => panic!("expected an invalid input, got {other:?}"),
    }
}

#[tokio::test]
async fn a_user_is_created_normalized_and_read_back_after_a_crash() {
    let mut users = Harness::<User>::new().await.unwrap();
    let id = Id::new();
    let profile = users
        .ask(id, create("  Ada.Lovelace@Example.COM ", "  Ada  "))
        .await
        .unwrap();
    assert_eq!(profile.id, id);
    assert_eq!(profile.email, "ada.lovelace@example.com");
    assert_eq!(profile.name, "Ada");
    assert!(profile.created_at_ms > 0);
    assert_eq!(users.ask(id, Get).await.unwrap(), profile);

    users.crash().await.unwrap();
    assert_eq!(users.ask(id, Get).await.unwrap(), profile);
    let (hash, role) = users.ask(id, Credentials).await.unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert_eq!(role, Role::User);
}

#[tokio::test]
async fn an_unknown_user_is_not_found() {
    let users = Harness::<User>::new().await.unwrap();
    let id = Id::new();
    let missing = users.ask(id, Get).await.unwrap_err();
    assert_eq!(missing, AskError::Domain(UserError::NotFound(id)));
    assert_eq!(missing.domain().unwrap().kind(), DomainKind::NotFound);
    assert!(missing.to_string().contains(&id.to_string()));
    assert_eq!(
        users.ask(id, Credentials).await,
        Err(AskError::Domain(UserError::NotFound(id)))
    );
}

#[tokio::test]
async fn a_second_create_of_an_id_conflicts_unless_it_is_the_same_create_again() {
    let users = Harness::<User>::new().await.unwrap();
    let id = Id::new();
    let first = users.ask(id, create("a@b.co", "A")).await.unwrap();
    // The same create again (a retry after a lost answer): the same profile, no new event.
    assert_eq!(users.ask(id, create("a@b.co", "A")).await.unwrap(), first);
    assert_eq!(users.outbox().unwrap().len(), 1);

    let clash = users.ask(id, create("other@b.co", "A")).await.unwrap_err();
    assert_eq!(clash, AskError::Domain(UserError::AlreadyExists(id)));
    assert_eq!(clash.domain().unwrap().kind(), DomainKind::Conflict);
    let mut admin = create("a@b.co", "A");
    admin.role = Role::Admin;
    assert_eq!(
        users.ask(id, admin).await,
        Err(AskError::Domain(UserError::AlreadyExists(id)))
    );
    assert_eq!(users.ask(id, Get).await.unwrap(), first);
}

#[tokio::test]
async fn creating_publishes_user_created_with_the_normalized_email() {
    let users = Harness::<User>::new().await.unwrap();
    let id = Id::new();
    let profile = users.ask(id, create(" X@Y.Example ", "X")).await.unwrap();
    let outbox = users.outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].topic, USER_CREATED);
    assert_eq!(outbox[0].entity, User::NAME);
    let event: UserCreated = troupe_runtime::service::decode(&outbox[0].payload).unwrap();
    assert_eq!(
        event,
        UserCreated {
            user_id: id,
            email: "x@y.example".into(),
            at_ms: profile.created_at_ms,
        }
    );
}

#[tokio::test]
async fn bad_emails_are_refused_naming_the_field_and_create_nothing() {
    let users = Harness::<User>::new().await.unwrap();
    let long_local = "a".repeat(250);
    for email in [
        "",
        "   ",
        "plain",
        "@example.com",
        "a@",
        "a@b",
        "a@b.",
        "a@.b",
        "a@b..c",
        "a@b@c.d",
        "a b@c.d",
        "a@c.d\te",
        "a\u{0}@c.d",
        "a\u{a0}b@c.d",
        "a\u{200b}@c.d",
        "\u{feff}a@c.d",
        "a@c.d\u{202e}",
        &format!("{long_local}@c.de"),
    ] {
        let id = Id::new();
        let answer = users.ask(id, create(email, "A")).await;
        assert_eq!(refused_field(answer), "email", "{email:?}");
        assert!(users.ask(id, Get).await.is_err());
    }
    assert!(users.outbox().unwrap().is_empty());
    // Exactly at the limit is accepted.
    let at_limit = format!("{}@c.de", "a".repeat(MAX_EMAIL_BYTES - 5));
    assert_eq!(at_limit.len(), MAX_EMAIL_BYTES);
    users.ask(Id::new(), create(&at_limit, "A")).await.unwrap();
}

#[tokio::test]
async fn names_are_counted_in_characters_and_trimmed() {
    let users = Harness::<User>::new().await.unwrap();
    // 100 characters of four bytes each: 400 bytes, still within the limit.
    let emoji = "\u{1F600}".repeat(MAX_NAME_CHARS);
    let profile = users
        .ask(Id::new(), create("e@x.io", &emoji))
        .await
        .unwrap();
    assert_eq!(profile.name.chars().count(), MAX_NAME_CHARS);
    let accents = "É".repeat(MAX_NAME_CHARS);
    users
        .ask(Id::new(), create("f@x.io", &format!("  {accents}  ")))
        .await
        .unwrap();

    for name in [
        String::new(),
        "   ".to_string(),
        "\t\n".to_string(),
        "a".repeat(MAX_NAME_CHARS + 1),
        "\u{1F600}".repeat(MAX_NAME_CHARS + 1),
        "line\nbreak".to_string(),
        "nul\u{0}".to_string(),
        "\u{1b}[31m".to_string(),
        "\u{200b}".to_string(),
        "\u{200b}\u{200d}\u{feff}".to_string(),
        "\u{202e}".to_string(),
    ] {
        let answer = users.ask(Id::new(), create("g@x.io", &name)).await;
        assert_eq!(refused_field(answer), "name", "{name:?}");
    }
    // Joiners and marks beside something visible are part of a name.
    for name in ["\u{1F468}\u{200d}\u{1F469}", "\u{200f}Ada", "e\u{301}"] {
        let profile = users.ask(Id::new(), create("h@x.io", name)).await.unwrap();
        assert_eq!(profile.name, name);
    }
}

#[tokio::test]
async fn an_empty_or_huge_password_hash_is_refused() {
    let users = Harness::<User>::new().await.unwrap();
    let mut empty = create("h@x.io", "H");
    empty.password_hash = String::new();
    assert_eq!(
        refused_field(users.ask(Id::new(), empty).await),
        "password_hash"
    );
    let mut huge = create("h@x.io", "H");
    huge.password_hash = "x".repeat(MAX_HASH_BYTES + 1);
    assert_eq!(
        refused_field(users.ask(Id::new(), huge).await),
        "password_hash"
    );
}

#[test]
fn each_error_has_its_kind_and_names_what_it_is_about() {
    let id = Id::new();
    let cases = [
        (
            UserError::invalid("email", "bad"),
            DomainKind::InvalidInput,
            "email",
        ),
        (
            UserError::AlreadyExists(id),
            DomainKind::Conflict,
            "already exists",
        ),
        (
            UserError::NotFound(id),
            DomainKind::NotFound,
            "does not exist",
        ),
        (
            UserError::EmailTaken("a@b.co".into()),
            DomainKind::Conflict,
            "a@b.co",
        ),
        (
            UserError::EmailNotReserved("a@b.co".into()),
            DomainKind::NotFound,
            "a@b.co",
        ),
        (
            UserError::EmailConfirmed("a@b.co".into()),
            DomainKind::Conflict,
            "a@b.co",
        ),
    ];
    for (error, kind, text) in cases {
        assert_eq!(error.kind(), kind, "{error}");
        assert!(error.to_string().contains(text), "{error}");
    }
    assert_eq!(Role::Admin.as_str(), "admin");
    assert_eq!(Role::User.as_str(), "user");
}

#[test]
fn one_address_typed_with_composed_or_decomposed_accents_is_one_address() {
    // "josé@café.example": é as one character (U+00E9), and as e + combining acute (U+0301),
    // as some keyboards and systems send it; and upper-case, decomposed.
    let composed = normalize_email("jos\u{e9}@caf\u{e9}.example").unwrap();
    let decomposed = normalize_email("jose\u{301}@cafe\u{301}.example").unwrap();
    let upper = normalize_email("JOSE\u{301}@CAFE\u{301}.EXAMPLE").unwrap();
    assert_eq!(composed, "jos\u{e9}@caf\u{e9}.example");
    assert_eq!(decomposed, composed);
    assert_eq!(upper, composed);
}
