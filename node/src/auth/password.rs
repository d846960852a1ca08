//! Password hashes: Argon2id, stored as PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`)
//! that carry their own parameters, so that they can be raised later without breaking old
//! hashes.
//!
//! Parameters: 19 MiB of memory, 2 passes, 1 lane: the OWASP minimum for Argon2id. Measured on
//! the 2-core development machine: about 20-30 ms per hash in a release build, which is the
//! cost of a registration and of a login, paid on a blocking thread (never on the runtime's
//! workers).
//!
//! Each hash holds its 19 MiB for its time, and anyone may ask for one (registration and
//! login need no token), so a node works only a few at once: the [`Gate`]. A request waits
//! its turn for a short while, and is refused with nothing done if it does not get one. A
//! login for an address nobody has costs a check too ([`verify_nobody`]), so that the answer's
//! time does not tell which addresses are registered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, mpsc};

use std::cell::RefCell;

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Duration;

/// Memory per hash, in KiB.
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const PASSES: u32 = 2;
/// Lanes.
pub const LANES: u32 = 1;

/// The most memory a stored hash may ask for, in KiB: a damaged record cannot make a check
/// take more.
pub const MOST_MEMORY_KIB: u32 = 256 * 1024;

/// The length of the hashes made here, in bytes.
const OUTPUT_LEN: usize = 32;

thread_local! {
    /// This thread's Argon2 memory, kept between hashes. Freed and allocated again for each
    /// hash, 19 MiB blocks are kept by the allocator anyway (glibc raises its mmap threshold
    /// after the first is freed), scattered over its arenas: hundreds of MiB after a burst of
    /// logins. Kept here, it is 19 MiB per password worker, once.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Fills `out` with the Argon2id hash of `password` and `salt` under `params`, in this
/// thread's memory.
fn hash_into(
    params: Params,
    version: Version,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    })
}

/// The hash of `password`, with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, Some(OUTPUT_LEN)).map_err(|e| e.to_string())?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| e.to_string())?;
    let output = Output::init_with(OUTPUT_LEN, |out| {
        hash_into(
            params.clone(),
            Version::V0x13,
            password.as_bytes(),
            salt_bytes,
            out,
        )
        .map_err(password_hash::Error::from)
    })
    .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` is the one `stored` was made from (false for a stored string that is not
/// an Argon2id hash at all, or asks for more than [`MOST_MEMORY_KIB`]).
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The parameters come from the stored string; the algorithm must be Argon2id.
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let (Ok(params), Some(expected), Some(salt)) =
        (Params::try_from(&parsed), parsed.hash, parsed.salt)
    else {
        return false;
    };
    let Ok(version) = Version::try_from(parsed.version.unwrap_or(0x13)) else {
        return false;
    };
    if params.m_cost() > MOST_MEMORY_KIB {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    Output::init_with(expected.len(), |out| {
        hash_into(params, version, password.as_bytes(), salt_bytes, out)
            .map_err(password_hash::Error::from)
    })
    // Output's equality takes the same time wherever the bytes differ.
    .is_ok_and(|computed| computed == expected)
}

/// A hash of a password nobody knows (a fresh random one each run), checked against when a
/// login names an address nobody has.
static NOBODY: LazyLock<String> = LazyLock::new(|| {
    let secret = uuid::Uuid::new_v4().to_string();
    hash(&secret).unwrap_or_default()
});

/// Checks `password` against nobody's hash: the work of a wrong password, with the answer
/// always false.
pub fn verify_nobody(password: &str) -> bool {
    std::hint::black_box(verify(password, &NOBODY));
    false
}

/// How long a request waits for its turn at the [`Gate`] by default.
pub const WAIT: Duration = Duration::from_secs(2);

/// How many requests may wait at the [`Gate`] per one worked at once; beyond, a request is
/// refused at once.
const WAITING_PER_SLOT: usize = 32;

/// A place in the queue and a slot: the right to hand one job to the workers.
type Turn<'a> = (Queued<'a>, tokio::sync::SemaphorePermit<'a>);

/// A job for the password workers.
type Job = Box<dyn FnOnce() + Send>;

/// Lets a few password hashes and checks run at once, on threads of their own: a few long-lived
/// threads keep the allocator's memory to a few hashes' worth, where the runtime's blocking
/// pool would start a thread (and an allocator arena keeping its 19 MiB) per busy moment.
#[derive(Debug)]
pub struct Gate {
    slots: Semaphore,
    /// Requests waiting for a slot or holding one.
    queued: AtomicUsize,
    at_once: usize,
    wait: Duration,
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// Why the [`Gate`] did not run the work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// Too many waiting, or no turn within the wait: nothing was done.
    #[error("too many password checks under way; retry shortly")]
    Busy,
    /// The work panicked: a bug.
    #[error("password work failed: {0}")]
    Failed(String),
}

impl Gate {
    /// A gate working `at_once` (at least 1) at a time on as many threads, each request
    /// waiting at most `wait`.
    pub fn new(at_once: usize, wait: Duration) -> Self {
        let at_once = at_once.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..at_once {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("troupe-password-{n}"))
                .spawn(move || work_through(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password worker");
            }
        }
        Self {
            slots: Semaphore::new(at_once),
            queued: AtomicUsize::new(0),
            at_once,
            wait,
            jobs: Mutex::new(jobs),
        }
    }

    /// A gate working as many at once as the machine has cores (1 to 8), waiting [`WAIT`].
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cores.clamp(1, 8), WAIT)
    }

    /// Waits for a turn: [`GateError::Busy`] if too many wait, or none came within the wait.
    async fn turn(&self) -> Result<Turn<'_>, GateError> {
        let queued = Queued::enter(&self.queued, self.at_once * (1 + WAITING_PER_SLOT))?;
        let slot = tokio::time::timeout(self.wait, self.slots.acquire())
            .await
            .map_err(|_| GateError::Busy)?
            .map_err(|_| GateError::Busy)?;
        Ok((queued, slot))
    }

    /// Runs `work` on a password worker once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GateError> {
        let turn = self.turn().await;
        let outcome = if turn.is_ok() { "done" } else { "busy" };
        metrics::counter!(crate::metrics::PASSWORD_WORK, "outcome" => outcome).increment(1);
        let _turn = turn?;
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone; the work is done either way.
            let _ = done.send(work());
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.send(job).is_ok(),
            Err(_) => false,
        };
        if !sent {
            return Err(GateError::Failed("the password workers are gone".into()));
        }
        // A worker that panicked dropped `done`: it is a bug, and the worker goes on.
        answer
            .await
            .map_err(|_| GateError::Failed("the work panicked".into()))
    }
}

/// A password worker's life: jobs one after another, until the gate is dropped.
fn work_through(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password job panicked");
        }
    }
}

/// A place in the gate's queue, given back when dropped.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn enter(queued: &'a AtomicUsize, most: usize) -> Result<Self, GateError> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < most).then_some(n + 1)
            })
            .map(|_| Self(queued))
            .map_err(|_| GateError::Busy)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hashes_agree_with_the_argon2_crate_s_own_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let made_there = theirs.hash_password(b"hunter2 hunter2", &salt).unwrap();
        assert!(verify("hunter2 hunter2", &made_there.to_string()));
        assert!(!verify("hunter2 hunter3", &made_there.to_string()));
        let made_here = hash("hunter2 hunter2").unwrap();
        let parsed = PasswordHash::new(&made_here).unwrap();
        assert!(theirs.verify_password(b"hunter2 hunter2", &parsed).is_ok());
        // Smaller parameters, as a hash made before a raise would carry: still checked.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let old = small.hash_password(b"hunter2 hunter2", &salt).unwrap();
        assert!(verify("hunter2 hunter2", &old.to_string()));
        // Argon2i, or a hash asking for 1 GiB: refused without the work.
        let argon2i = made_here.replacen("$argon2id$", "$argon2i$", 1);
        assert!(!verify("hunter2 hunter2", &argon2i));
        let greedy = made_here.replacen("m=19456", "m=1048576", 1);
        assert!(!verify("hunter2 hunter2", &greedy));
    }

    #[test]
    fn nobody_s_hash_costs_what_a_user_s_does() {
        // A real Argon2id hash with the parameters of every new one: checking a password
        // against it is the same work as against a registered user's.
        let params = |h: &str| h.split('$').nth(3).map(str::to_string);
        let made = hash("correct horse battery staple").unwrap();
        assert!(PasswordHash::new(&NOBODY).is_ok(), "{}", *NOBODY);
        assert_eq!(params(&NOBODY), params(&made));
    }

    #[tokio::test]
    async fn the_gate_works_a_few_at_once_and_refuses_who_waits_too_long() {
        let gate = Arc::new(Gate::new(1, Duration::from_millis(50)));
        let (held, hold) = std::sync::mpsc::channel::<()>();
        let (started, start) = tokio::sync::oneshot::channel();
        let first = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move {
                gate.run(move || {
                    started.send(()).unwrap();
                    hold.recv().unwrap();
                    1
                })
                .await
            }
        });
        start.await.unwrap();
        // The one slot is taken: the second waits its 50 ms and is refused, its work not run.
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ran);
        let second = gate
            .run(move || counted.fetch_add(1, Ordering::SeqCst))
            .await;
        assert_eq!(second, Err(GateError::Busy));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        held.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(1));
        // The slot is free again.
        assert_eq!(gate.run(|| 2).await, Ok(2));
    }

    #[tokio::test]
    async fn beyond_its_queue_the_gate_refuses_at_once() {
        let queued = AtomicUsize::new(0);
        let first = Queued::enter(&queued, 2).unwrap();
        let _second = Queued::enter(&queued, 2).unwrap();
        assert!(matches!(Queued::enter(&queued, 2), Err(GateError::Busy)));
        drop(first);
        assert!(Queued::enter(&queued, 2).is_ok());
        assert_eq!(queued.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_password_verifies_against_its_hash_and_nothing_else_does() {
        let stored = hash("correct horse battery staple").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse battery staple", &stored));
        assert!(!verify("correct horse battery stapl", &stored));
        assert!(!verify("", &stored));
        assert!(!verify("correct horse battery staple", "not a hash"));
        // Two hashes of one password differ (each has its own salt).
        assert_ne!(stored, hash("correct horse battery staple").unwrap());
        // Unicode passwords are bytes like any other.
        let emoji = hash("пароль-🔑-密码").unwrap();
        assert!(verify("пароль-🔑-密码", &emoji));
    }
}
