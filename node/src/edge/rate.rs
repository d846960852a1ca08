//! Per-client rate limiting of `/api` and `/admin` (`[http] rate_limit_per_second`, off by
//! default): a token bucket per client address, refilled at the rate, holding the burst.
//! Beyond it, 429 `rate_limited` with `Retry-After`. `/health` and `/metrics` are never limited
//! (load balancers and scrapers poll them).
//!
//! What a stranger can make it hold is bounded: at most [`MAX_CLIENTS`] buckets; when full,
//! the buckets idle long enough to be full again are dropped, and if none is, the new client is
//! limited with the rest rather than given a bucket.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::{Duration, Instant};

use super::error::ApiError;

/// The most clients tracked at once.
pub(crate) const MAX_CLIENTS: usize = 65_536;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every client.
pub(crate) struct Limiter {
    per_second: f64,
    burst: f64,
    /// A std mutex: held for one bucket's arithmetic.
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request of `client` at `now`: Ok, or how long until it would be allowed.
    pub(crate) fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&client) && buckets.len() >= MAX_CLIENTS {
            let full_after = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
            if buckets.len() >= MAX_CLIENTS {
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

/// The middleware: `limiter` is None when no limit is configured.
pub(crate) async fn limit(
    State(limiter): State<Option<Arc<Limiter>>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(limiter) = &limiter {
        let path = request.uri().path();
        if path.starts_with("/api/") || path.starts_with("/admin/") {
            let client = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
            if let Err(wait) = limiter.take(client, Instant::now()) {
                return Err(ApiError::RateLimited {
                    message: format!("too many requests from {client}: slow down"),
                    retry_after: wait,
                });
            }
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_the_rate_and_others_are_apart() {
        let limiter = Limiter::new(10, 3);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take(a, t0), Ok(()));
        }
        let wait = limiter.take(a, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(
            limiter.take(b, t0),
            Ok(()),
            "another client has its own bucket"
        );
        // A tenth of a second later, one more.
        assert_eq!(limiter.take(a, t0 + Duration::from_millis(100)), Ok(()));
        assert!(limiter.take(a, t0 + Duration::from_millis(100)).is_err());
        // Idle a while: the burst again, not more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.take(a, later), Ok(()));
        }
        assert!(limiter.take(a, later).is_err());
    }

    #[test]
    fn strangers_cannot_grow_it_beyond_its_bound() {
        let limiter = Limiter::new(1, 1);
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS as u32 {
            let _ = limiter.take(IpAddr::from(i.to_be_bytes()), t0);
        }
        // All full and fresh: a newcomer is limited, not given a bucket.
        let newcomer = IpAddr::from([255, 255, 255, 255]);
        assert!(limiter.take(newcomer, t0).is_err());
        assert!(
            limiter
                .buckets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
                <= MAX_CLIENTS
        );
        // Once the others are full again, they make room.
        assert_eq!(limiter.take(newcomer, t0 + Duration::from_secs(2)), Ok(()));
    }
}
