#![allow(clippy::unwrap_used)] // a panic is how a test fails

use super::*;
use crate::entity::AskError;
use crate::entity::testing::Harness;

#[tokio::test]
async fn puts_count_versions_and_survive_a_crash() {
    let mut kv = Harness::<Kv>::new().await.unwrap();
    let key = "color".to_string();
    assert_eq!(kv.ask(key.clone(), Get).await, Ok(None));
    assert_eq!(
        kv.ask(
            key.clone(),
            Put {
                value: b"1".to_vec()
            }
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        kv.ask(
            key.clone(),
            Put {
                value: b"2".to_vec()
            }
        )
        .await,
        Ok(2)
    );
    kv.crash().await.unwrap();
    assert_eq!(
        kv.ask(key.clone(), Get).await,
        Ok(Some(Versioned {
            version: 2,
            value: b"2".to_vec()
        }))
    );
}

#[tokio::test]
async fn out_of_bounds_keys_and_values_are_refused_and_change_nothing() {
    let kv = Harness::<Kv>::new().await.unwrap();
    let too_large = Put {
        value: vec![0; MAX_VALUE_BYTES + 1],
    };
    assert_eq!(
        kv.ask("k".to_string(), too_large).await,
        Err(AskError::Domain(KvError::TooLarge))
    );
    assert_eq!(kv.ask("k".to_string(), Get).await, Ok(None));
    assert_eq!(
        kv.ask("k".repeat(MAX_KEY_BYTES + 1), Put { value: vec![] })
            .await,
        Err(AskError::Domain(KvError::BadKey))
    );
}
