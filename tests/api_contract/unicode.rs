//! Unicode at the edge: names counted in characters (Unicode scalar values), not bytes, and
//! trimmed; control characters (NUL, ESC, DEL, newlines...) and names with nothing visible
//! refused; emails trimmed and lower-cased (Unicode too), refused with anything invisible or
//! control inside; skus only `[A-Za-z0-9_-]`, 1 to 64.

use reqwest::Method;
use serde_json::json;
use troupe_node::auth::Role;

use super::{bearer, call, cluster};

/// Names both kinds of name refuse: control characters, or nothing visible.
fn refused_names() -> Vec<String> {
    [
        "",
        "   ",
        "\u{3000}",
        "\u{0}",
        "Ada\u{0}",
        "Ada\u{0}Lovelace",
        "A\u{7}",
        "A\u{1b}[31mred",
        "A\u{7f}",
        "A\u{85}B",
        "A\nB",
        "A\tB",
        "A\rB",
        "\u{200b}",
        "\u{200b}\u{200c}\u{200d}\u{feff}",
        "\u{202e}",
        "\u{2060}\u{2061}",
        "\u{ad}",
        " \u{200b} ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Names both kinds of name take, each with the name kept (trimmed).
fn accepted_names() -> Vec<(String, String)> {
    let same = |s: &str| (s.to_string(), s.to_string());
    vec![
        same("🦀 Ferris"),
        ("  Ada Lovelace \u{3000}".into(), "Ada Lovelace".into()),
        ("\u{a0}Zoë\u{a0}".into(), "Zoë".into()),
        same("e\u{301}"),
        same("שלום עולם"),
        same("مرحبا بالعالم"),
        same("👨\u{200d}👩\u{200d}👧 family"),
        same("\u{200f}Ada"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_names_emails_and_skus_are_checked_in_characters_and_controls_refused() {
    let cluster = cluster(2).await;
    let post = Method::POST;
    let register = |n: usize, email: String, name: String| {
        let body = json!({"email": email, "name": name, "password": "correct horse"});
        call(
            &cluster,
            ["n1", "n2"][n % 2],
            post.clone(),
            "/api/v1/users",
            None,
            Some(body),
        )
    };

    // User names: up to 100 characters, whatever their bytes; trimmed first.
    let mut names = accepted_names();
    names.extend([
        same_name("é".repeat(100)),
        same_name("🦀".repeat(100)),
        same_name("e\u{301}".repeat(50)),
        (format!(" {} ", "é".repeat(100)), "é".repeat(100)),
    ]);
    for (n, (name, kept)) in names.into_iter().enumerate() {
        let created = register(n, format!("u{n}@example.com"), name.clone())
            .await
            .ok(201, &format!("name {name:?}"));
        assert_eq!(created["name"], kept.as_str(), "{name:?}");
    }
    let mut names = refused_names();
    names.extend(["é".repeat(101), "🦀".repeat(101), "e\u{301}".repeat(51)]);
    for (n, name) in names.into_iter().enumerate() {
        register(n, format!("r{n}@example.com"), name.clone())
            .await
            .error(
                400,
                "invalid_request",
                Some("name"),
                &format!("name {name:?}"),
            );
    }

    // Passwords: 8 to 128 characters, not bytes; kept as they are.
    let key = "\u{1F511}";
    for (n, password) in [key.repeat(8), key.repeat(128), " spaces ".into()]
        .iter()
        .enumerate()
    {
        let body = json!({"email": format!("p{n}@example.com"), "name": "P", "password": password});
        call(
            &cluster,
            "n1",
            post.clone(),
            "/api/v1/users",
            None,
            Some(body),
        )
        .await
        .ok(201, &format!("password {password:?}"));
        let login = json!({"email": format!("p{n}@example.com"), "password": password});
        call(
            &cluster,
            "n2",
            post.clone(),
            "/api/v1/auth/login",
            None,
            Some(login),
        )
        .await
        .ok(200, &format!("login with {password:?}"));
    }
    let trimmed = json!({"email": "p2@example.com", "password": "spaces"});
    call(
        &cluster,
        "n2",
        post.clone(),
        "/api/v1/auth/login",
        None,
        Some(trimmed),
    )
    .await
    .error(401, "unauthenticated", None, "a password is not trimmed");
    for password in [key.repeat(7), key.repeat(129), "1234567".into()] {
        let body = json!({"email": "q@example.com", "name": "Q", "password": password});
        call(
            &cluster,
            "n2",
            post.clone(),
            "/api/v1/users",
            None,
            Some(body),
        )
        .await
        .error(
            400,
            "invalid_request",
            Some("password"),
            &format!("password {password:?}"),
        );
    }

    // Emails: trimmed and lower-cased, Unicode too; then the same address in any spelling.
    for (n, (email, kept)) in [
        ("  Zoë@Exämple.COM ", "zoë@exämple.com"),
        ("\tADA2@EXAMPLE.COM\n", "ada2@example.com"),
        ("ÅSA@example.com", "åsa@example.com"),
        (
            &format!("{}@example.com", "a".repeat(242)),
            &format!("{}@example.com", "a".repeat(242)),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let created = register(n, email.to_string(), "E".into())
            .await
            .ok(201, &format!("email {email:?}"));
        assert_eq!(created["email"], kept, "{email:?}");
    }
    for (n, email) in ["zoë@exämple.com", "ZOË@EXÄMPLE.COM", "åsa@EXAMPLE.com"]
        .into_iter()
        .enumerate()
    {
        register(n, email.to_string(), "E".into()).await.error(
            409,
            "conflict",
            None,
            &format!("email {email:?} again"),
        );
    }
    let login = json!({"email": " ZOË@exämple.com\t", "password": "correct horse"});
    call(
        &cluster,
        "n2",
        post.clone(),
        "/api/v1/auth/login",
        None,
        Some(login),
    )
    .await
    .ok(200, "login with another spelling");
    for (n, email) in [
        "ada\u{200b}@example.com".to_string(),
        "ada@example.com\u{200b}".to_string(),
        "\u{feff}ada@example.com".to_string(),
        "ada\u{200d}@example.com".to_string(),
        "\u{202e}moc.elpmaxe@ada".to_string(),
        "ada\u{0}@example.com".to_string(),
        "ada\u{7f}@example.com".to_string(),
        "a da@example.com".to_string(),
        "ada@exa mple.com".to_string(),
        "ada@@example.com".to_string(),
        "@example.com".to_string(),
        "ada@example".to_string(),
        "ada@example..com".to_string(),
        format!("{}@example.com", "a".repeat(243)),
    ]
    .into_iter()
    .enumerate()
    {
        register(n, email.clone(), "E".into()).await.error(
            400,
            "invalid_request",
            Some("email"),
            &format!("email {email:?}"),
        );
    }

    // Products: skus of `[A-Za-z0-9_-]` only; names as users' names, up to 200 characters.
    let admin = bearer(Role::Admin);
    let create = |n: usize, sku: String, name: String| {
        let body = json!({"sku": sku, "name": name, "price_cents": 100, "stock": 1});
        call(
            &cluster,
            ["n1", "n2"][n % 2],
            post.clone(),
            "/api/v1/products",
            Some(&admin),
            Some(body),
        )
    };
    for (n, sku) in ["A-b_9".to_string(), "x".repeat(64), "0".into(), "-".into()]
        .into_iter()
        .enumerate()
    {
        create(n, sku.clone(), "Tea".into())
            .await
            .ok(201, &format!("sku {sku:?}"));
    }
    for (n, sku) in [
        String::new(),
        "x".repeat(65),
        "ü".into(),
        "KT 1".into(),
        " KT-1".into(),
        "KT-1 ".into(),
        "KT/1".into(),
        "../x".into(),
        "KT.1".into(),
        "🦀".into(),
        "KT\u{0}".into(),
        "KT\u{200b}".into(),
        "ＫＴ１".into(),
        "KT-1\n".into(),
        "%4B".into(),
    ]
    .into_iter()
    .enumerate()
    {
        create(n, sku.clone(), "Tea".into()).await.error(
            400,
            "invalid_request",
            Some("sku"),
            &format!("sku {sku:?}"),
        );
    }
    let mut names = accepted_names();
    names.extend([
        same_name("é".repeat(200)),
        same_name("🦀".repeat(200)),
        (
            format!("\u{3000}{}\u{a0}", "é".repeat(200)),
            "é".repeat(200),
        ),
    ]);
    for (n, (name, kept)) in names.into_iter().enumerate() {
        let created = create(n, format!("OK-{n}"), name.clone())
            .await
            .ok(201, &format!("product name {name:?}"));
        assert_eq!(created["name"], kept.as_str(), "{name:?}");
    }
    let mut names = refused_names();
    names.extend(["é".repeat(201), "🦀".repeat(201)]);
    for (n, name) in names.into_iter().enumerate() {
        create(n, format!("NO-{n}"), name.clone()).await.error(
            400,
            "invalid_request",
            Some("name"),
            &format!("product name {name:?}"),
        );
    }
    // A refused product left its sku free.
    create(0, "NO-0".into(), "Tea".into())
        .await
        .ok(201, "a refused sku again");
}

fn same_name(name: String) -> (String, String) {
    (name.clone(), name)
}
