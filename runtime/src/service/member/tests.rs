//! When a member's reply leaves: at once when what it waits for is durable already (no task in
//! between), never before it is.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;
use tokio::time::Duration;

use super::release;
use crate::service::ReplyTo;
use crate::store::{Engine, KeyspaceEngine, SledEngine, Store, StoreError, WriteBatch};

/// Sled, whose flushes wait while the test holds them.
struct Gated {
    inner: SledEngine,
    held: Mutex<bool>,
    released: Condvar,
}

impl Gated {
    fn hold(&self, held: bool) {
        *self.held.lock().unwrap() = held;
        self.released.notify_all();
    }
}

/// Holds a gated engine's flushes until dropped (so that a failed assertion never leaves a
/// flush blocked, which would hang the test's runtime on shutdown).
struct Held(Arc<Gated>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.hold(false);
    }
}

impl Engine for Gated {
    fn keyspace(&self, name: &str) -> Result<Arc<dyn KeyspaceEngine>, StoreError> {
        self.inner.keyspace(name)
    }
    fn flush(&self) -> Result<(), StoreError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while *held {
            held = self.released.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        drop(held);
        self.inner.flush()
    }
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.inner.size_on_disk()
    }
    fn keyspace_names(&self) -> Result<Vec<String>, StoreError> {
        self.inner.keyspace_names()
    }
}

fn one_put() -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(b"k", &1u8).unwrap();
    batch
}

// One thread: a task spawned to send the reply could not have run before the check.
#[tokio::test(flavor = "current_thread")]
async fn a_reply_waiting_for_what_is_durable_already_leaves_at_once() {
    let store = Store::temporary().unwrap();
    let ks = store.claim("x/0", Duration::ZERO).await.unwrap();
    ks.commit(one_put()).await.unwrap();
    let read = ks.seen(b"k");
    assert!(read.is_reached());
    let (tx, mut rx) = oneshot::channel();
    release(Some((ReplyTo::local(tx), 7u64)), Some(read), Vec::new());
    assert_eq!(rx.try_recv().unwrap(), Ok(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_never_leaves_before_what_it_waits_for_is_durable() {
    let engine = Arc::new(Gated {
        inner: SledEngine::temporary().unwrap(),
        held: Mutex::new(false),
        released: Condvar::new(),
    });
    let store = Store::with_engine(Arc::clone(&engine) as Arc<dyn Engine>);
    let ks = store.claim("x/0", Duration::ZERO).await.unwrap();
    engine.hold(true);
    let held = Held(Arc::clone(&engine));
    let write = ks.apply(one_put()).unwrap();
    // A read after a write that is not durable yet waits for it too.
    let read = ks.seen(b"k");
    assert!(!write.is_reached() && !read.is_reached());
    let (write_tx, write_rx) = oneshot::channel();
    let (read_tx, mut read_rx) = oneshot::channel();
    release(
        Some((ReplyTo::local(write_tx), 1u64)),
        Some(write),
        Vec::new(),
    );
    release(
        Some((ReplyTo::local(read_tx), 2u64)),
        Some(read),
        Vec::new(),
    );
    let early = tokio::time::timeout(Duration::from_millis(200), &mut read_rx).await;
    assert!(early.is_err(), "a reply left before its write was durable");
    drop(held);
    assert_eq!(write_rx.await.unwrap(), Ok(1));
    assert_eq!(read_rx.await.unwrap(), Ok(2));
}
