//! The durable timers one shard has armed in memory, so that a cancelled one stops waiting
//! instead of firing a command that finds its record gone.
//!
//! A timer is armed once the batch that wrote it is durable, and a later command may cancel it
//! before that (the shard goes on with its next command while a batch is flushed): such a
//! timer is remembered as cancelled and never armed. One whose task has fired already is
//! simply gone.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::AbortHandle;

/// The timers of one shard, by record key.
#[derive(Debug, Default)]
pub(crate) struct Armed {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Armed: waiting or firing.
    tasks: HashMap<Vec<u8>, AbortHandle>,
    /// Written by a command whose batch is not durable yet.
    pending: HashSet<Vec<u8>>,
    /// Cancelled while pending: not to be armed.
    cancelled: HashSet<Vec<u8>>,
}

impl Armed {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Timer `key` was written by a command; it is armed once that command's batch is durable.
    pub(crate) fn scheduled(&self, key: &[u8]) {
        self.lock().pending.insert(key.to_vec());
    }

    /// Arms timer `key` as `task` unless it was cancelled since it was scheduled; the task is
    /// forgotten here once it ends.
    pub(crate) fn arm(
        self: &Arc<Self>,
        key: Vec<u8>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let mut inner = self.lock();
        inner.pending.remove(&key);
        if inner.cancelled.remove(&key) {
            return;
        }
        let armed = Arc::clone(self);
        let own = key.clone();
        let handle = tokio::spawn(async move {
            task.await;
            armed.lock().tasks.remove(&own);
        });
        inner.tasks.insert(key, handle.abort_handle());
    }

    /// Cancels timer `key`: stops its task, or keeps it from being armed.
    pub(crate) fn cancel(&self, key: &[u8]) {
        let mut inner = self.lock();
        if let Some(task) = inner.tasks.remove(key) {
            task.abort();
        } else if inner.pending.remove(key) {
            inner.cancelled.insert(key.to_vec());
        }
    }

    /// How many timers are armed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().tasks.len()
    }
}
