//! Group commit: many writers, one flush at a time, each writer released by the first flush
//! that started after its write was applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, watch};
use tokio::time::{Duration, Instant};

use super::marks::Marks;
use super::{Engine, StoreError};

/// How often the committer refreshes the size on disk when idle.
const SIZE_EVERY: Duration = Duration::from_secs(1);

pub(super) struct GroupCommit {
    /// Writes applied so far (a sequence number per write).
    written: AtomicU64,
    /// The highest write sequence known durable, or the error that stopped the committer.
    durable: watch::Sender<Result<u64, StoreError>>,
    wake: Notify,
    flushes: AtomicU64,
    size_on_disk: AtomicU64,
}

impl GroupCommit {
    pub(super) fn start(engine: Arc<dyn Engine>, marks: Option<Arc<Marks>>) -> Arc<Self> {
        let (durable, _) = watch::channel(Ok(0));
        let commit = Arc::new(Self {
            written: AtomicU64::new(0),
            durable,
            wake: Notify::new(),
            flushes: AtomicU64::new(0),
            size_on_disk: AtomicU64::new(engine.size_on_disk().unwrap_or(0)),
        });
        tokio::spawn(run(Arc::downgrade(&commit), engine, marks));
        commit
    }

    pub(super) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Records one applied write; returns its sequence number.
    pub(super) fn note_write(&self) -> u64 {
        self.written.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Fails if an earlier flush failed.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match &*self.durable.borrow() {
            Ok(_) => Ok(()),
            Err(e) => Err(StoreError::Failed(e.to_string())),
        }
    }

    /// Waits until write `seq` is durable.
    pub(super) async fn wait_durable(&self, seq: u64) -> Result<(), StoreError> {
        let mut rx = self.durable.subscribe();
        if matches!(&*rx.borrow(), Ok(d) if *d >= seq) {
            return Ok(());
        }
        self.wake.notify_one();
        let result = rx
            .wait_for(|d| !matches!(d, Ok(d) if *d < seq))
            .await
            .map_err(|_| StoreError::Failed("the store was closed".into()))?;
        match &*result {
            Ok(_) => Ok(()),
            Err(e) => Err(StoreError::Failed(e.to_string())),
        }
    }

    pub(super) fn size_on_disk(&self) -> u64 {
        self.size_on_disk.load(Ordering::Relaxed)
    }

    pub(super) fn stats(&self) -> (u64, u64) {
        (self.flushes.load(Ordering::Relaxed), self.written())
    }
}

async fn run(
    commit: std::sync::Weak<GroupCommit>,
    engine: Arc<dyn Engine>,
    marks: Option<Arc<Marks>>,
) {
    let mut last_size = Instant::now();
    loop {
        let Some(c) = commit.upgrade() else {
            return;
        };
        let durable = match &*c.durable.borrow() {
            Ok(d) => *d,
            Err(_) => return,
        };
        let target = c.written();
        if durable >= target {
            // Nothing to flush: sleep until a writer waits (or refresh the size now and then).
            let woken = tokio::time::timeout(SIZE_EVERY, c.wake.notified()).await;
            if woken.is_err() || last_size.elapsed() >= SIZE_EVERY {
                let engine = Arc::clone(&engine);
                let marks = marks.clone();
                if let Ok(Ok(size)) = tokio::task::spawn_blocking(move || {
                    if let Some(marks) = marks {
                        marks.after_flush(None, false);
                    }
                    engine.size_on_disk()
                })
                .await
                {
                    c.size_on_disk.store(size, Ordering::Relaxed);
                }
                last_size = Instant::now();
            }
            continue;
        }
        let flushing = Arc::clone(&engine);
        let marking = marks.clone();
        let result = tokio::task::spawn_blocking(move || {
            // The marks of the keyspaces written go into this flush (see `marks`).
            let covered = match &marking {
                Some(marks) => marks.before_flush(&*flushing)?,
                None => None,
            };
            flushing.flush()?;
            if let Some(marks) = marking {
                marks.after_flush(covered, false);
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Engine(format!("flush task failed: {e}"))));
        c.flushes.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                let _ = c.durable.send_replace(Ok(target));
            }
            Err(e) => {
                tracing::error!(error = %e, "store flush failed: no more writes will be acknowledged");
                let _ = c.durable.send_replace(Err(e));
                return;
            }
        }
    }
}
