//! A supervisor that cools down instead of escalating, and the readiness list it feeds.

use super::*;
use crate::backoff::Backoff;

/// Records like [`Recorder`] and keeps a [`CoolingDown`] list like a service's root.
struct Both(Recorder, CoolingObserver);

impl SupervisorObserver for Both {
    fn child_started(&self, index: usize, name: &str, cell: &ActorCell) {
        self.0.child_started(index, name, cell);
        self.1.child_started(index, name, cell);
    }
    fn child_stopped(&self, index: usize, name: &str, cell: &ActorCell) {
        self.0.child_stopped(index, name, cell);
        self.1.child_stopped(index, name, cell);
    }
    fn event(&self, event: &SupervisorEvent) {
        self.0.event(event);
        self.1.event(event);
    }
}

/// A supervisor of one crasher that gives up after 2 restarts and cools down for 1 s, 2 s, 4 s.
async fn cooling_supervisor() -> (
    ActorRef<SupervisorMsg>,
    mpsc::UnboundedReceiver<Seen>,
    ActorCell,
    Arc<CoolingDown>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cooling = Arc::new(CoolingDown::default());
    let args = SupervisorArgs {
        name: "root".into(),
        strategy: Strategy::OneForOne,
        policy: RestartPolicy {
            max_restarts: 2,
            within: Duration::from_secs(10),
            stable_after: Duration::ZERO,
            ..RestartPolicy::default()
        },
        children: vec![crasher("c0", 7)],
        observer: Some(Arc::new(Both(
            Recorder(Mutex::new(tx)),
            CoolingObserver::new("svc", Arc::clone(&cooling)),
        ))),
        on_give_up: OnGiveUp::CoolDown(Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(4),
            0.0,
        )),
    };
    let (sup, _) = Actor::spawn(None, Supervisor, args).await.unwrap();
    let Some(Seen::Started(_, cell)) = rx.recv().await else {
        panic!("the child did not start");
    };
    (sup, rx, cell, cooling)
}

/// Kills the child until the supervisor gives up; returns the pause it announced.
async fn storm(mut cell: ActorCell, rx: &mut mpsc::UnboundedReceiver<Seen>) -> Duration {
    for _ in 0..2 {
        cell.kill();
        cell = next_start(rx).await.1;
    }
    cell.kill();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
        {
            Some(Seen::Event(SupervisorEvent::CoolingDown {
                restarts, pause, ..
            })) => {
                assert_eq!(restarts, 2);
                return pause;
            }
            Some(Seen::Event(SupervisorEvent::Escalated { .. })) => panic!("escalated"),
            Some(Seen::Started(..)) => panic!("restarted past the intensity limit"),
            _ => {}
        }
    }
}

/// The next start of the child, and how long it took from `since`.
async fn started(rx: &mut mpsc::UnboundedReceiver<Seen>, since: Instant) -> (ActorCell, Duration) {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap()
        {
            Some(Seen::Started(_, cell)) => return (cell, since.elapsed()),
            Some(Seen::Event(SupervisorEvent::Escalated { .. })) => panic!("escalated"),
            _ => {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_that_gave_up_starts_its_children_again_after_a_growing_pause() {
    let (sup, mut rx, cell, cooling) = cooling_supervisor().await;
    assert!(cooling.reasons().is_empty());

    let pause = storm(cell, &mut rx).await;
    let gave_up = Instant::now();
    assert_eq!(pause, Duration::from_secs(1));
    assert_ne!(sup.get_status(), ActorStatus::Stopped, "it did not fail");
    let reasons = cooling.reasons();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("service svc") && reasons[0].contains("2 restarts"),
        "{reasons:?}"
    );

    let (cell, took) = started(&mut rx, gave_up).await;
    assert!(took >= pause, "started again after {took:?}");
    assert_eq!(ping(&cell).await, 7, "the restarted child serves");
    assert!(cooling.reasons().is_empty(), "no longer reported");

    // Giving up again soon after: the pause doubles, and it still comes back.
    let pause = storm(cell, &mut rx).await;
    let gave_up = Instant::now();
    assert_eq!(pause, Duration::from_secs(2));
    let (cell, took) = started(&mut rx, gave_up).await;
    assert!(took >= pause, "started again after {took:?}");
    assert_eq!(ping(&cell).await, 7);
    sup.stop_and_wait(None, None).await.unwrap();
    assert_eq!(cell.get_status(), ActorStatus::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_long_run_after_a_cool_down_starts_the_pause_from_the_bottom_again() {
    let (sup, mut rx, cell, _) = cooling_supervisor().await;
    let pause = storm(cell, &mut rx).await;
    let (cell, _) = started(&mut rx, Instant::now()).await;
    assert_eq!(pause, Duration::from_secs(1));
    // A whole intensity window (10 s) without giving up.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let pause = storm(cell, &mut rx).await;
    assert_eq!(pause, Duration::from_secs(1));
    sup.stop(None);
}
