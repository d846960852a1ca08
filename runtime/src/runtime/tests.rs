//! One-node runtimes in this process: bounded mailboxes, order, and deadlines.

use std::net::TcpListener;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Duration;

use super::*;
use crate::cluster::NodeSpec;
use crate::registry::LocalHandle;
use crate::service::{CallError, CallOptions, MemberInfo, RequestContext, ServiceError};

/// Two distinct free ports (held together while chosen, so that they differ).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// A service whose members handle a request only when the test opens the gate, and record
/// what they handled.
struct Gated {
    gate: Arc<Semaphore>,
    seen: Arc<std::sync::Mutex<Vec<u64>>>,
    /// Requests whose handling has started (they may be waiting at the gate).
    entered: Arc<std::sync::atomic::AtomicUsize>,
}

impl Service for Gated {
    const NAME: &'static str = "gated";
    type Request = u64;
    type Response = u64;
    type State = ();

    async fn init(&self, _member: &MemberInfo) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn handle(&self, _: &mut (), request: u64, _cx: &RequestContext<'_>) -> u64 {
        self.entered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(permit) = self.gate.acquire().await {
            permit.forget();
        }
        self.seen.lock().unwrap().push(request);
        request
    }
}

async fn runtime_with(spec: ServiceSpec) -> Runtime {
    let me = NodeId::try_new("t1").unwrap();
    let (cluster_port, link_port) = free_ports();
    let cluster_addr = format!("127.0.0.1:{cluster_port}").parse().unwrap();
    let link_addr = format!("127.0.0.1:{link_port}").parse().unwrap();
    Runtime::start(RuntimeSettings {
        cluster: ClusterSettings::new(
            "t1",
            vec![NodeSpec {
                id: me.clone(),
                cluster_addr,
            }],
            "runtime-test-cookie-0123".into(),
        )
        .unwrap(),
        link_addrs: HashMap::from([(me, link_addr)]),
        services: HashMap::from([(Gated::NAME.to_string(), spec)]),
        restart: RestartPolicy::default(),
        store: None,
        event_max_attempts: 5,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_full_mailbox_makes_senders_wait_then_fail_as_overloaded() {
    let runtime = runtime_with(ServiceSpec {
        members_per_node: 1,
        mailbox_capacity: 4,
        ..ServiceSpec::default()
    })
    .await;
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    runtime
        .host(Gated {
            gate: Arc::clone(&gate),
            seen: Arc::clone(&seen),
            entered: Arc::default(),
        })
        .await
        .unwrap();
    let router = runtime.router::<Gated>();
    for i in 0..4 {
        router.cast(i).await.unwrap();
    }
    let short = CallOptions::timeout(Duration::from_millis(50));
    let started = tokio::time::Instant::now();
    assert_eq!(
        router.cast_with(99, short.clone()).await,
        Err(CallError::Overloaded)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "gave up before its deadline"
    );

    // A sender that waits gets in as soon as the member makes room.
    let waiting = {
        let router = router.clone();
        tokio::spawn(async move {
            router
                .cast_with(4, CallOptions::timeout(Duration::from_secs(10)))
                .await
        })
    };
    gate.add_permits(100);
    waiting.await.unwrap().unwrap();
    let answer = router
        .call(5, CallOptions::timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(answer, 5);
    // Messages from one sender to one member are handled in the order sent.
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_call_to_a_member_that_dies_fails_at_once_and_a_slow_one_times_out() {
    let runtime = runtime_with(ServiceSpec {
        members_per_node: 1,
        ..ServiceSpec::default()
    })
    .await;
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    runtime
        .host(Gated {
            gate: Arc::clone(&gate),
            seen: Arc::default(),
            entered: Arc::clone(&entered),
        })
        .await
        .unwrap();
    let router = runtime.router::<Gated>();
    let started = tokio::time::Instant::now();
    assert_eq!(
        router
            .call(1, CallOptions::timeout(Duration::from_millis(100)))
            .await,
        Err(CallError::Timeout)
    );
    assert!(started.elapsed() >= Duration::from_millis(100));

    // The member is stuck on request 1; request 2 waits behind it. Kill the member: request 2
    // was never handled, so the router sends it again to the restarted member, which answers
    // once the gate opens, long before the 30 s deadline.
    let pending = {
        let router = router.clone();
        tokio::spawn(async move {
            router
                .call(2, CallOptions::timeout(Duration::from_secs(30)))
                .await
        })
    };
    // Wait until request 2 is queued behind request 1 (both counted in the mailbox).
    let handles = runtime.core.registry.local_handles(Gated::NAME);
    let handle = Arc::clone(&handles[0].1)
        .downcast::<LocalHandle<Gated>>()
        .ok()
        .unwrap();
    let waited = tokio::time::Instant::now();
    while handle.mailbox.queued() < 2 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "request 2 never queued"
        );
        tokio::task::yield_now().await;
    }
    let killed = runtime.kill_member(Gated::NAME, None, None).await.unwrap();
    assert_eq!(killed.len(), 1);
    gate.add_permits(1);
    let result = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, Ok(2));

    // A member killed while it handles a call: the caller hears at once that the outcome is
    // unknown, and the call is not sent again (it is not idempotent).
    let before = entered.load(std::sync::atomic::Ordering::SeqCst);
    let pending = {
        let router = router.clone();
        tokio::spawn(async move {
            router
                .call(3, CallOptions::timeout(Duration::from_secs(30)))
                .await
        })
    };
    let waited = tokio::time::Instant::now();
    while entered.load(std::sync::atomic::Ordering::SeqCst) == before {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "request 3 never started"
        );
        tokio::task::yield_now().await;
    }
    let killed = runtime.kill_member(Gated::NAME, None, None).await.unwrap();
    assert_eq!(killed.len(), 1);
    let result = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, Err(CallError::MemberFailed));
    assert_eq!(
        entered.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "request 3 was handled again"
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_abandoned_call_gives_back_its_in_flight_count() {
    let runtime = runtime_with(ServiceSpec {
        members_per_node: 2,
        balance: crate::registry::balance::Balance::LeastOutstanding,
        ..ServiceSpec::default()
    })
    .await;
    let gate = Arc::new(Semaphore::new(0));
    runtime
        .host(Gated {
            gate: Arc::clone(&gate),
            seen: Arc::default(),
            entered: Arc::default(),
        })
        .await
        .unwrap();
    let router = runtime.router::<Gated>();
    // Three callers give up (an HTTP client gone) while their calls wait on a stuck member.
    for request in 0..3 {
        let abandoned = tokio::time::timeout(
            Duration::from_millis(20),
            router.call(request, CallOptions::timeout(Duration::from_secs(30))),
        )
        .await;
        assert!(abandoned.is_err(), "the call should still be waiting");
    }
    assert_eq!(
        router.num_outstanding(),
        0,
        "abandoned calls still count as in flight: the balancer would shun their members"
    );
    gate.add_permits(100);
    runtime.shutdown(Duration::from_secs(5)).await;
}
