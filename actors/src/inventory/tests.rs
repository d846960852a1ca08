#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use proptest::prelude::*;
use troupe_runtime::entity::testing::Harness;
use troupe_runtime::entity::{AskError, DomainError, DomainKind};

use super::*;

fn tea(stock: u64) -> Create {
    Create {
        sku: "tea-1".into(),
        name: "Green tea".into(),
        price_cents: 450,
        stock,
    }
}

fn kind<T: std::fmt::Debug>(result: Result<T, AskError<InventoryError>>) -> DomainKind {
    match result {
        Err(AskError::Domain(e)) => e.kind(),
        other => panic!("expected a domain error, got {other:?}"),
    }
}

fn reserve(key: &str, quantity: u64) -> Reserve {
    Reserve {
        key: key.into(),
        quantity,
    }
}

#[tokio::test]
async fn a_product_is_created_read_and_restocked() {
    let products = Harness::<Product>::new().await.unwrap();
    let id = Id::new();
    let created = products.ask(id, tea(5)).await.unwrap();
    assert_eq!(created.stock, 5);
    assert_eq!(products.ask(id, Get).await.unwrap(), created);
    assert_eq!(kind(products.ask(id, tea(5)).await), DomainKind::Conflict);
    assert_eq!(
        products
            .ask(id, Restock { quantity: 3 })
            .await
            .unwrap()
            .stock,
        8
    );
    assert_eq!(
        kind(products.ask(id, Restock { quantity: 0 }).await),
        DomainKind::Unprocessable
    );
    let other = Id::new();
    assert_eq!(kind(products.ask(other, Get).await), DomainKind::NotFound);
    assert_eq!(
        kind(products.ask(other, Restock { quantity: 1 }).await),
        DomainKind::NotFound
    );
}

#[tokio::test]
async fn creation_names_the_bad_field() {
    let products = Harness::<Product>::new().await.unwrap();
    let cases = [
        (
            Create {
                sku: String::new(),
                ..tea(1)
            },
            "sku",
            DomainKind::InvalidInput,
        ),
        (
            Create {
                sku: "tea 1".into(),
                ..tea(1)
            },
            "sku",
            DomainKind::InvalidInput,
        ),
        (
            Create {
                sku: "x".repeat(65),
                ..tea(1)
            },
            "sku",
            DomainKind::InvalidInput,
        ),
        (
            Create {
                name: String::new(),
                ..tea(1)
            },
            "name",
            DomainKind::InvalidInput,
        ),
        (
            Create {
                name: "é".repeat(201),
                ..tea(1)
            },
            "name",
            DomainKind::InvalidInput,
        ),
        (
            Create {
                price_cents: 0,
                ..tea(1)
            },
            "price_cents",
            DomainKind::Unprocessable,
        ),
        (tea(MAX_STOCK + 1), "stock", DomainKind::InvalidInput),
        (
            Create {
                price_cents: MAX_PRICE_CENTS + 1,
                ..tea(1)
            },
            "price_cents",
            DomainKind::InvalidInput,
        ),
    ];
    let refused_names = [
        "   ",
        "nul\u{0}",
        "bell\u{7}",
        "\u{200b}\u{feff}",
        "\u{202e}",
    ];
    let cases = cases.into_iter().chain(refused_names.map(|name| {
        (
            Create {
                name: name.into(),
                ..tea(1)
            },
            "name",
            DomainKind::InvalidInput,
        )
    }));
    for (create, field, expected) in cases {
        match products.ask(Id::new(), create).await {
            Err(AskError::Domain(e)) => {
                assert_eq!(e.kind(), expected, "{e}");
                assert!(e.to_string().starts_with(field), "{e}");
            }
            other => panic!("expected {field} refused, got {other:?}"),
        }
    }
    // 200 characters of a two-byte letter are fine.
    let long = Create {
        name: "é".repeat(200),
        ..tea(1)
    };
    products.ask(Id::new(), long).await.unwrap();
    // Names are trimmed, as users' are.
    let padded = Create {
        name: "\u{3000} Tea \u{a0}".into(),
        ..tea(1)
    };
    assert_eq!(products.ask(Id::new(), padded).await.unwrap().name, "Tea");
}

#[tokio::test]
async fn reserve_and_release_are_idempotent_by_key_even_after_a_crash() {
    let mut products = Harness::<Product>::new().await.unwrap();
    let id = Id::new();
    products.ask(id, tea(10)).await.unwrap();
    assert_eq!(products.ask(id, reserve("a", 3)).await.unwrap().stock, 7);
    assert_eq!(products.ask(id, reserve("a", 3)).await.unwrap().stock, 7);
    products.crash().await.unwrap();
    assert_eq!(products.ask(id, reserve("a", 3)).await.unwrap().stock, 7);
    assert_eq!(
        kind(products.ask(id, reserve("a", 4)).await),
        DomainKind::Conflict
    );
    assert_eq!(
        products.ask(id, Release { key: "a".into() }).await.unwrap(),
        3
    );
    products.crash().await.unwrap();
    assert_eq!(
        products.ask(id, Release { key: "a".into() }).await.unwrap(),
        0
    );
    assert_eq!(products.ask(id, Get).await.unwrap().stock, 10);
    // A released key does not reserve again.
    assert_eq!(
        kind(products.ask(id, reserve("a", 3)).await),
        DomainKind::Conflict
    );
    assert_eq!(products.ask(id, Get).await.unwrap().stock, 10);
}

#[tokio::test]
async fn a_release_before_its_reserve_makes_the_late_reserve_take_nothing() {
    let products = Harness::<Product>::new().await.unwrap();
    let id = Id::new();
    products.ask(id, tea(10)).await.unwrap();
    assert_eq!(
        products
            .ask(id, Release { key: "late".into() })
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        products.ask(id, reserve("late", 2)).await,
        Err(AskError::Domain(InventoryError::KeyReleased { .. }))
    ));
    assert_eq!(products.ask(id, Get).await.unwrap().stock, 10);
}

#[tokio::test]
async fn stock_never_goes_below_zero() {
    let products = Harness::<Product>::new().await.unwrap();
    let id = Id::new();
    products.ask(id, tea(5)).await.unwrap();
    products.ask(id, reserve("a", 4)).await.unwrap();
    assert_eq!(
        products.ask(id, reserve("b", 2)).await,
        Err(AskError::Domain(InventoryError::OutOfStock {
            product: id,
            available: 1,
            requested: 2
        }))
    );
    assert_eq!(
        kind(products.ask(id, reserve("b", 2)).await),
        DomainKind::Unprocessable
    );
    assert_eq!(products.ask(id, reserve("b", 1)).await.unwrap().stock, 0);
    assert_eq!(
        kind(products.ask(id, reserve("c", 0)).await),
        DomainKind::Unprocessable
    );
    assert_eq!(
        kind(products.ask(Id::new(), reserve("c", 1)).await),
        DomainKind::NotFound
    );
}

#[tokio::test]
async fn a_committed_reservation_is_sold_and_cannot_be_released() {
    let products = Harness::<Product>::new().await.unwrap();
    let id = Id::new();
    products.ask(id, tea(5)).await.unwrap();
    products.ask(id, reserve("a", 2)).await.unwrap();
    products.ask(id, Commit { key: "a".into() }).await.unwrap();
    products.ask(id, Commit { key: "a".into() }).await.unwrap();
    assert_eq!(
        kind(products.ask(id, Release { key: "a".into() }).await),
        DomainKind::Conflict
    );
    assert_eq!(products.ask(id, reserve("a", 2)).await.unwrap().stock, 3);
    assert_eq!(
        kind(products.ask(id, Commit { key: "b".into() }).await),
        DomainKind::NotFound
    );
    assert_eq!(products.ask(id, Get).await.unwrap().stock, 3);
}

#[tokio::test]
async fn settled_reservations_are_bounded() {
    let products = Harness::<Product>::new().await.unwrap();
    let id = Id::new();
    products.ask(id, tea(1)).await.unwrap();
    let total = MAX_SETTLED_RESERVATIONS + 5;
    for n in 0..total {
        let key = format!("k{n}");
        products.ask(id, reserve(&key, 1)).await.unwrap();
        products.ask(id, Release { key }).await.unwrap();
    }
    // The oldest were dropped: the first key is unknown again; the newest is remembered.
    assert_eq!(products.ask(id, reserve("k0", 1)).await.unwrap().stock, 0);
    let newest = format!("k{}", total - 1);
    assert_eq!(
        kind(products.ask(id, reserve(&newest, 1)).await),
        DomainKind::Conflict
    );
}

#[tokio::test]
async fn a_sku_is_held_by_one_product() {
    let skus = Harness::<Skus>::new().await.unwrap();
    let (a, b) = (Id::new(), Id::new());
    let sku = || "tea-1".to_string();
    let held = skus.ask(sku(), ReserveSku { product_id: a }).await.unwrap();
    assert_eq!(held.product_id, a);
    assert!(!held.confirmed);
    assert_eq!(
        skus.ask(sku(), ReserveSku { product_id: a }).await.unwrap(),
        held
    );
    assert_eq!(
        skus.ask(sku(), ReserveSku { product_id: b }).await,
        Err(AskError::Domain(SkuError::Taken {
            sku: sku(),
            product_id: a
        }))
    );
    assert!(matches!(
        skus.ask(sku(), Confirm { product_id: b }).await,
        Err(AskError::Domain(SkuError::NotReserved { .. }))
    ));
    // Another product's release changes nothing.
    skus.ask(sku(), ReleaseSku { product_id: b }).await.unwrap();
    assert!(
        skus.ask(sku(), Confirm { product_id: a })
            .await
            .unwrap()
            .confirmed
    );
    assert!(
        skus.ask(sku(), Confirm { product_id: a })
            .await
            .unwrap()
            .confirmed
    );
    // A confirmed sku stays with its product.
    skus.ask(sku(), ReleaseSku { product_id: a }).await.unwrap();
    assert_eq!(
        skus.ask(sku(), Lookup).await.unwrap().map(|e| e.product_id),
        Some(a)
    );

    // A failed creation gives the sku back.
    let other = || "tea-2".to_string();
    skus.ask(other(), ReserveSku { product_id: a })
        .await
        .unwrap();
    skus.ask(other(), ReleaseSku { product_id: a })
        .await
        .unwrap();
    assert_eq!(skus.ask(other(), Lookup).await.unwrap(), None);
    assert_eq!(
        skus.ask(other(), ReserveSku { product_id: b })
            .await
            .unwrap()
            .product_id,
        b
    );
    assert!(matches!(
        skus.ask("bad sku".to_string(), Lookup).await,
        Err(AskError::Domain(SkuError::Invalid(_)))
    ));
}

#[test]
fn only_a_stale_unconfirmed_sku_can_be_taken_over() {
    let entry = SkuEntry {
        product_id: Id::new(),
        confirmed: false,
        reserved_at_ms: 1_000,
    };
    assert!(!entry.taken_over_at(1_000));
    assert!(!entry.taken_over_at(1_000 + STALE_PENDING_MS - 1));
    assert!(entry.taken_over_at(1_000 + STALE_PENDING_MS));
    // A clock that went back does not free it.
    assert!(!entry.taken_over_at(0));
    let confirmed = SkuEntry {
        confirmed: true,
        ..entry
    };
    assert!(!confirmed.taken_over_at(u64::MAX));
}

#[derive(Debug, Clone)]
enum Op {
    Reserve(u8, u64),
    Release(u8),
    Restock(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8, 1u64..6).prop_map(|(k, q)| Op::Reserve(k, q)),
        (0u8..8).prop_map(Op::Release),
        (1u64..4).prop_map(Op::Restock),
    ]
}

/// The reference model: stock and the state of each key.
#[derive(Default)]
struct Model {
    stock: u64,
    keys: HashMap<u8, (u64, bool)>,
}

impl Model {
    /// What the product should answer: Ok(stock after) or the error's kind.
    fn apply(&mut self, op: &Op) -> Result<u64, DomainKind> {
        match *op {
            Op::Reserve(k, q) => match self.keys.get(&k) {
                Some(&(_, true)) => Err(DomainKind::Conflict),
                Some(&(held, false)) if held != q => Err(DomainKind::Conflict),
                Some(_) => Ok(self.stock),
                None if self.stock < q => Err(DomainKind::Unprocessable),
                None => {
                    self.stock -= q;
                    self.keys.insert(k, (q, false));
                    Ok(self.stock)
                }
            },
            Op::Release(k) => {
                let entry = self.keys.entry(k).or_insert((0, false));
                if !entry.1 {
                    self.stock += entry.0;
                    entry.1 = true;
                }
                Ok(self.stock)
            }
            Op::Restock(q) => {
                self.stock += q;
                Ok(self.stock)
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn reserve_and_release_keep_stock_as_the_model_does(
        initial in 0u64..10,
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let products = Harness::<Product>::new().await.unwrap();
            let id = Id::new();
            products.ask(id, tea(initial)).await.unwrap();
            let mut model = Model { stock: initial, ..Model::default() };
            for op in &ops {
                let expected = model.apply(op);
                let got = match *op {
                    Op::Reserve(k, q) => products
                        .ask(id, reserve(&format!("k{k}"), q))
                        .await
                        .map(|r| r.stock),
                    Op::Release(k) => products
                        .ask(id, Release { key: format!("k{k}") })
                        .await
                        .map(|_| 0),
                    Op::Restock(q) => products.ask(id, Restock { quantity: q }).await.map(|p| p.stock),
                };
                let got = got.map_err(|e| match e {
                    AskError::Domain(e) => e.kind(),
                    other => panic!("{other:?}"),
                });
                let stock = products.ask(id, Get).await.unwrap().stock;
                assert_eq!(stock, model.stock, "after {op:?}");
                match (op, got, expected) {
                    (Op::Release(_), Ok(_), Ok(_)) => {}
                    (_, got, expected) => assert_eq!(got, expected, "after {op:?}"),
                }
            }
        });
    }
}
