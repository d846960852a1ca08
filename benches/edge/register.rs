//! Registrations (`POST /api/v1/users`) at a fixed concurrency through one node's edge, beside
//! raw Argon2id hashes with the node's parameters in this process, at the same concurrency
//! on the same cores: a registration hashes its password once, so the hash rate bounds it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::time::{Duration, Instant};
use troupe_node::auth::password::{LANES, MEMORY_KIB, PASSES};

/// Registrations (and hashes) in flight.
pub(crate) const CONCURRENCY: usize = 8;

/// What one registration run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    pub(crate) per_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) count: usize,
}

/// `CONCURRENCY` clients registering distinct users through the edge at `port` for
/// `duration`; every answer must be 201.
pub(crate) async fn registrations(port: u16, run: u32, duration: Duration) -> Report {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/users");
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|task| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while started.elapsed() < duration {
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .json(&serde_json::json!({
                            "email": format!("bench-{run}-{task}-{n}@example.com"),
                            "name": "Bench user",
                            "password": format!("bench-password-{n}"),
                        }))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    assert_eq!(
                        status,
                        201,
                        "registration: {}",
                        response.text().await.unwrap()
                    );
                    latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Report {
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: super::percentile(&latencies, 0.50),
        p99_ms: super::percentile(&latencies, 0.99),
        count: latencies.len(),
    }
}

fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap(),
    )
}

fn hash_once(hasher: &Argon2<'_>, n: u64) {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let password = format!("bench-password-{n}");
    std::hint::black_box(hasher.hash_password(password.as_bytes(), &salt).unwrap());
}

/// Argon2id hashes per second with `threads` threads hashing for `duration`, and how many.
pub(crate) fn raw_hashes(threads: usize, duration: Duration) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                let hasher = argon2();
                let mut n = 0;
                while started.elapsed() < duration {
                    hash_once(&hasher, n);
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let done = done.load(Ordering::Relaxed);
    (done as f64 / started.elapsed().as_secs_f64(), done)
}

/// Milliseconds per hash, one at a time (the median of `n`).
pub(crate) fn one_hash_ms(n: u64) -> f64 {
    let hasher = argon2();
    let times = (0..n)
        .map(|i| {
            let started = Instant::now();
            hash_once(&hasher, i);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    super::median(times)
}

/// The parameters, as a PHC string shows them.
pub(crate) fn parameters() -> String {
    format!(
        "Argon2id v19, m={MEMORY_KIB} KiB ({} MiB), t={PASSES} passes, p={LANES} lane",
        MEMORY_KIB / 1024
    )
}
