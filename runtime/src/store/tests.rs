use std::sync::Arc;

use super::*;

#[tokio::test]
async fn a_keyspace_has_one_owner_at_a_time() {
    let store = Store::temporary().unwrap();
    let first = store.claim("kv/3", Duration::ZERO).await.unwrap();
    assert_eq!(
        store
            .claim("kv/3", Duration::from_millis(20))
            .await
            .unwrap_err(),
        StoreError::AlreadyOwned("kv/3".into())
    );
    // Another keyspace is free.
    let _other = store.claim("kv/4", Duration::ZERO).await.unwrap();
    // A successor waiting for the owner gets the keyspace as soon as it is released.
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.claim("kv/3", Duration::from_secs(10)).await })
    };
    tokio::task::yield_now().await;
    drop(first);
    let second = waiting.await.unwrap().unwrap();
    assert_eq!(second.name(), "kv/3");
}

#[tokio::test]
async fn a_batch_is_atomic_and_durable_when_acknowledged() {
    let store = Store::temporary().unwrap();
    let ks = store.claim("orders/0", Duration::ZERO).await.unwrap();
    let mut batch = WriteBatch::new();
    batch.put(b"a", &1u64).unwrap().put(b"b", &"two").unwrap();
    ks.commit(batch).await.unwrap();
    assert_eq!(ks.get::<u64>(b"a").unwrap(), Some(1));
    assert_eq!(ks.get::<String>(b"b").unwrap(), Some("two".into()));
    let (flushes, writes) = store.commit_stats();
    assert!(
        flushes >= 1 && writes == 1,
        "{flushes} flushes for {writes} writes"
    );

    let mut batch = WriteBatch::new();
    batch.delete(b"a").put(b"c", &3u64).unwrap();
    ks.commit(batch).await.unwrap();
    assert_eq!(ks.get::<u64>(b"a").unwrap(), None);
    let all: Vec<(Vec<u8>, u64)> = ks
        .scan(b"", None, 10)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != b"b")
        .collect();
    assert_eq!(all, vec![(b"c".to_vec(), 3)]);
}

#[tokio::test]
async fn scans_follow_key_order_and_page() {
    use key::Key;
    let store = Store::temporary().unwrap();
    let ks = store.claim("users/0", Duration::ZERO).await.unwrap();
    let mut batch = WriteBatch::new();
    for n in [30u64, 2, 1000, 7] {
        batch.put(&("user", n).to_key(), &n).unwrap();
    }
    batch.put(&("zzz", 1u64).to_key(), &0u64).unwrap();
    ks.commit(batch).await.unwrap();
    let prefix = ("user",).to_key();
    let page: Vec<u64> = ks
        .scan::<u64>(&prefix, None, 2)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(page, vec![2, 7]);
    let after = ("user", 7u64).to_key();
    let rest: Vec<u64> = ks
        .scan::<u64>(&prefix, Some(&after), 10)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(rest, vec![30, 1000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_flushes() {
    let store = Store::temporary().unwrap();
    let mut tasks = Vec::new();
    for w in 0..32u64 {
        let ks = store
            .claim(&format!("w/{w}"), Duration::ZERO)
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..50u64 {
                let mut batch = WriteBatch::new();
                batch.put(&i.to_be_bytes(), &(w, i)).unwrap();
                ks.commit(batch).await.unwrap();
            }
            ks
        }));
    }
    let mut keyspaces = Vec::new();
    for t in tasks {
        keyspaces.push(t.await.unwrap());
    }
    let (flushes, writes) = store.commit_stats();
    assert_eq!(writes, 32 * 50);
    assert!(
        flushes < writes,
        "{flushes} flushes for {writes} writes: no group commit"
    );
    for (w, ks) in keyspaces.iter().enumerate() {
        assert_eq!(
            ks.get::<(u64, u64)>(&49u64.to_be_bytes()).unwrap(),
            Some((w as u64, 49))
        );
    }
}

/// An engine whose flush fails, to see that nothing is acknowledged after that.
struct BrokenDisk(SledEngine);

impl Engine for BrokenDisk {
    fn keyspace(&self, name: &str) -> Result<Arc<dyn KeyspaceEngine>, StoreError> {
        self.0.keyspace(name)
    }
    fn flush(&self) -> Result<(), StoreError> {
        Err(StoreError::Engine("disk full".into()))
    }
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn keyspace_names(&self) -> Result<Vec<String>, StoreError> {
        self.0.keyspace_names()
    }
}

#[tokio::test]
async fn a_failed_flush_acknowledges_nothing() {
    let store = Store::with_engine(Arc::new(BrokenDisk(SledEngine::temporary().unwrap())));
    let ks = store.claim("x/0", Duration::ZERO).await.unwrap();
    let mut batch = WriteBatch::new();
    batch.put(b"k", &1u8).unwrap();
    assert!(matches!(
        ks.commit(batch.clone()).await,
        Err(StoreError::Failed(_))
    ));
    assert!(matches!(ks.commit(batch).await, Err(StoreError::Failed(_))));
}

#[tokio::test(start_paused = true)]
async fn the_size_on_disk_follows_the_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    let ks = store.claim("big/0", Duration::ZERO).await.unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..1000u32 {
        batch.put(&i.to_be_bytes(), &vec![7u8; 512]).unwrap();
    }
    ks.commit(batch).await.unwrap();
    // The committer refreshes the size once it has been idle for a second (paused clock).
    let mut waited = 0;
    while store.size_on_disk() < 500_000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(
            waited < 100,
            "size on disk stayed at {}",
            store.size_on_disk()
        );
    }
}

#[tokio::test]
async fn records_live_apart_and_data_is_found_by_prefix() {
    let store = Store::temporary().unwrap();
    assert!(!store.has_data("kv/").unwrap());
    assert_eq!(store.record::<u32>("placement/kv").unwrap(), None);
    store.put_record("placement/kv", &16u32).await.unwrap();
    assert_eq!(store.record::<u32>("placement/kv").unwrap(), Some(16));
    // A record is not a service's data, and an opened but empty keyspace holds none.
    let ks = store.claim("kv/3", Duration::ZERO).await.unwrap();
    assert!(!store.has_data("kv/").unwrap());
    let mut batch = WriteBatch::new();
    batch.put(b"k", &1u8).unwrap();
    ks.commit(batch).await.unwrap();
    assert!(store.has_data("kv/").unwrap());
    assert!(!store.has_data("kv2/").unwrap());
}

#[tokio::test]
async fn a_keyspace_that_recovered_less_than_it_acknowledged_serves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    // The marks say kv/0 had a commit acknowledged; the store (new, empty) has none of it.
    std::fs::write(dir.path().join("store.marks"), "kv/0\t5\n").unwrap();
    let store = Store::open(&path, 1 << 20).unwrap();
    let problems = store.problems();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("kv/0 is damaged"), "{problems:?}");
    let damaged = store.claim("kv/0", Duration::ZERO).await.unwrap();
    assert!(matches!(
        damaged.get::<u8>(b"k"),
        Err(StoreError::Damaged(_))
    ));
    let mut batch = WriteBatch::new();
    batch.put(b"k", &1u8).unwrap();
    assert!(matches!(
        damaged.commit(batch.clone()).await,
        Err(StoreError::Damaged(_))
    ));
    // Others are fine, and their marks are saved at a checkpoint.
    let fine = store.claim("kv/1", Duration::ZERO).await.unwrap();
    fine.commit(batch).await.unwrap();
    store.checkpoint().await.unwrap();
    let saved = std::fs::read_to_string(dir.path().join("store.marks")).unwrap();
    assert!(
        saved.contains("kv/0\t5\n") && saved.contains("kv/1\t"),
        "{saved}"
    );
}

/// An engine whose disk is full for its first `failures` flushes.
struct FullFor {
    inner: SledEngine,
    failures: std::sync::atomic::AtomicU32,
}

impl Engine for FullFor {
    fn keyspace(&self, name: &str) -> Result<Arc<dyn KeyspaceEngine>, StoreError> {
        self.inner.keyspace(name)
    }
    fn flush(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Full("disk full".into()));
        }
        self.inner.flush()
    }
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn keyspace_names(&self) -> Result<Vec<String>, StoreError> {
        self.inner.keyspace_names()
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_serves_durable_reads_and_resumes() {
    let engine = FullFor {
        inner: SledEngine::temporary().unwrap(),
        failures: std::sync::atomic::AtomicU32::new(0),
    };
    let engine = Arc::new(engine);
    let store = Store::with_engine(Arc::clone(&engine) as Arc<dyn Engine>);
    let ks = store.claim("kv/0", Duration::ZERO).await.unwrap();
    let mut batch = WriteBatch::new();
    batch.put(b"kept", &1u8).unwrap();
    ks.commit(batch).await.unwrap();

    engine
        .failures
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let mut batch = WriteBatch::new();
    batch.put(b"lost", &2u8).unwrap();
    assert!(matches!(
        ks.commit(batch.clone()).await,
        Err(StoreError::Full(_))
    ));
    // Refused at once now, and reported; durable data is readable, the failed write is not.
    assert!(matches!(
        ks.commit(batch.clone()).await,
        Err(StoreError::Full(_))
    ));
    assert!(!store.problems().is_empty());
    ks.durable().await.unwrap();
    assert_eq!(ks.get::<u8>(b"kept").unwrap(), Some(1));
    assert!(matches!(ks.get::<u8>(b"lost"), Err(StoreError::Full(_))));

    // Space comes back: the store resumes by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ks.commit(batch.clone()).await.is_err() {
        assert!(Instant::now() < deadline, "the store did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.problems().is_empty());
    assert_eq!(ks.get::<u8>(b"lost").unwrap(), Some(2));
}

/// Opens the store at `path`, retrying while the one just dropped still holds its files.
async fn reopen(path: &Path) -> Store {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(path, 1024 * 1024) {
            Ok(store) => return store,
            Err(e) => {
                assert!(Instant::now() < deadline, "reopen: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyspaces_batch_numbers_only_grow_across_restarts_of_its_owner_and_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let apply = |ks: &Keyspace, value: u64| {
        let mut batch = WriteBatch::new();
        batch.put(b"k", &value).unwrap();
        ks.apply(batch).unwrap().batch().unwrap()
    };
    let mut seen = Vec::new();
    {
        let store = reopen(&path).await;
        let ks = store.claim("orders/0", Duration::ZERO).await.unwrap();
        let other = store.claim("orders/1", Duration::ZERO).await.unwrap();
        for i in 0..3 {
            seen.push(apply(&ks, i));
        }
        // Another keyspace has a sequence of its own; a read or an empty batch has no number.
        assert_eq!(apply(&other, 0) & u64::from(u32::MAX), 1);
        assert_eq!(ks.apply(WriteBatch::new()).unwrap().batch(), None);
        assert_eq!(ks.seen(b"k").batch(), None);
        // The owner restarts (its successor claims the keyspace): the sequence goes on.
        drop(ks);
        let ks = store.claim("orders/0", Duration::ZERO).await.unwrap();
        seen.push(apply(&ks, 3));
        store.sync().await.unwrap();
    }
    // The node restarts: a new generation, still above everything before.
    let store = reopen(&path).await;
    let ks = store.claim("orders/0", Duration::ZERO).await.unwrap();
    seen.push(apply(&ks, 4));
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "batch numbers grow: {seen:x?}"
    );
    assert_eq!(
        seen[1] - seen[0],
        1,
        "consecutive within one open: {seen:x?}"
    );
    assert!(seen[4] >> 32 > seen[3] >> 32, "a new generation: {seen:x?}");
}
