use std::sync::{Arc, Mutex};

use ractor::{ActorStatus, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tokio::sync::mpsc;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---- the pure policy ----

fn policy() -> RestartPolicy {
    RestartPolicy {
        max_restarts: 3,
        within: ms(1000),
        stable_after: ms(500),
        backoff: crate::backoff::Backoff::new(ms(10), ms(100), 0.0),
    }
}

#[test]
fn a_stable_child_restarts_at_once() {
    let p = policy();
    let (mut recent, mut rapid) = (VecDeque::new(), 2);
    let now = Instant::now();
    assert_eq!(
        p.decide(&mut recent, &mut rapid, ms(600), now, 0.5),
        Decision::Restart {
            after: Duration::ZERO
        }
    );
    assert_eq!(rapid, 0, "a stable run resets the backoff");
}

#[test]
fn a_crash_loop_backs_off_exponentially_up_to_the_cap() {
    let p = RestartPolicy {
        max_restarts: 100,
        ..policy()
    };
    let (mut recent, mut rapid) = (VecDeque::new(), 0);
    let now = Instant::now();
    let delays: Vec<_> = (0..6)
        .map(
            |i| match p.decide(&mut recent, &mut rapid, ms(1), now + ms(i), 0.5) {
                Decision::Restart { after } => after,
                Decision::Escalate => panic!("escalated"),
            },
        )
        .collect();
    assert_eq!(
        delays,
        vec![ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]
    );
}

#[test]
fn too_many_restarts_in_the_window_escalate_and_old_ones_age_out() {
    let p = policy();
    let (mut recent, mut rapid) = (VecDeque::new(), 0);
    let t0 = Instant::now();
    for i in 0..3 {
        assert!(matches!(
            p.decide(&mut recent, &mut rapid, ms(600), t0 + ms(i * 100), 0.5),
            Decision::Restart { .. }
        ));
    }
    assert_eq!(
        p.decide(&mut recent, &mut rapid, ms(600), t0 + ms(300), 0.5),
        Decision::Escalate
    );
    // A second later the first restarts have left the window.
    assert!(matches!(
        p.decide(&mut recent, &mut rapid, ms(600), t0 + ms(1150), 0.5),
        Decision::Restart { .. }
    ));
}

// ---- the actor ----

#[derive(RactorMessage)]
enum CrashMsg {
    Panic,
    Fail,
    Ping(RpcReplyPort<u32>),
}

struct Crasher;

impl Actor for Crasher {
    type Msg = CrashMsg;
    type State = u32;
    type Arguments = u32;

    async fn pre_start(&self, _: ActorRef<CrashMsg>, id: u32) -> Result<u32, ActorProcessingErr> {
        Ok(id)
    }

    async fn handle(
        &self,
        _: ActorRef<CrashMsg>,
        msg: CrashMsg,
        id: &mut u32,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CrashMsg::Panic => panic!("asked to panic"),
            CrashMsg::Fail => Err("asked to fail".into()),
            CrashMsg::Ping(reply) => {
                let _ = reply.send(*id);
                Ok(())
            }
        }
    }
}

fn crasher(name: &str, id: u32) -> ChildSpec {
    ChildSpec::new(name, move |sup| {
        Box::pin(async move {
            let (actor, _) = Actor::spawn_linked(None, Crasher, id, sup).await?;
            Ok(actor.get_cell())
        })
    })
}

#[derive(Debug)]
enum Seen {
    Started(usize, ActorCell),
    Stopped(usize),
    Event(SupervisorEvent),
}

struct Recorder(Mutex<mpsc::UnboundedSender<Seen>>);

impl SupervisorObserver for Recorder {
    fn child_started(&self, index: usize, _: &str, cell: &ActorCell) {
        let _ = self
            .0
            .lock()
            .unwrap()
            .send(Seen::Started(index, cell.clone()));
    }
    fn child_stopped(&self, index: usize, _: &str, _: &ActorCell) {
        let _ = self.0.lock().unwrap().send(Seen::Stopped(index));
    }
    fn event(&self, event: &SupervisorEvent) {
        let _ = self.0.lock().unwrap().send(Seen::Event(event.clone()));
    }
}

async fn supervise(
    strategy: Strategy,
    policy: RestartPolicy,
    n: u32,
) -> (
    ActorRef<SupervisorMsg>,
    mpsc::UnboundedReceiver<Seen>,
    Vec<ActorCell>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let args = SupervisorArgs {
        name: "test".into(),
        strategy,
        policy,
        children: (0..n).map(|i| crasher(&format!("c{i}"), i)).collect(),
        observer: Some(Arc::new(Recorder(Mutex::new(tx)))),
        on_give_up: OnGiveUp::Escalate,
    };
    let (sup, _) = Actor::spawn(None, Supervisor, args).await.unwrap();
    let mut cells = Vec::new();
    for _ in 0..n {
        match rx.recv().await.unwrap() {
            Seen::Started(_, cell) => cells.push(cell),
            other => panic!("unexpected {other:?}"),
        }
    }
    (sup, rx, cells)
}

/// The next restart; the observer must have been told of the child's stop first.
async fn next_start(rx: &mut mpsc::UnboundedReceiver<Seen>) -> (usize, ActorCell) {
    let mut stopped = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Seen::Started(i, cell))) => {
                assert!(stopped.contains(&i), "child {i} restarted without a stop");
                return (i, cell);
            }
            Ok(Some(Seen::Stopped(i))) => stopped.push(i),
            Ok(Some(_)) => continue,
            other => panic!("no restart: {other:?}"),
        }
    }
}

async fn ping(cell: &ActorCell) -> u32 {
    let actor: ActorRef<CrashMsg> = cell.clone().into();
    ractor::call_t!(actor, CrashMsg::Ping, 1000).unwrap()
}

#[tokio::test]
async fn a_child_that_panics_fails_or_is_killed_comes_back() {
    let (sup, mut rx, cells) = supervise(Strategy::OneForOne, RestartPolicy::default(), 2).await;
    let actor: ActorRef<CrashMsg> = cells[0].clone().into();
    actor.cast(CrashMsg::Panic).unwrap();
    let (i, cell) = next_start(&mut rx).await;
    assert_eq!(i, 0);
    assert_ne!(cell.get_id(), cells[0].get_id());
    assert_eq!(ping(&cell).await, 0);

    let actor: ActorRef<CrashMsg> = cells[1].clone().into();
    actor.cast(CrashMsg::Fail).unwrap();
    let (i, cell) = next_start(&mut rx).await;
    assert_eq!(i, 1);
    assert_eq!(ping(&cell).await, 1);

    cell.kill();
    let (i, again) = next_start(&mut rx).await;
    assert_eq!(i, 1);
    assert_eq!(ping(&again).await, 1);

    let children = ractor::call_t!(sup, SupervisorMsg::Children, 1000).unwrap();
    assert_eq!(children[1].restarts, 2);
    assert_eq!(children[0].restarts, 1);
    sup.stop_and_wait(None, None).await.unwrap();
    assert_eq!(
        again.get_status(),
        ActorStatus::Stopped,
        "children stop with the supervisor"
    );
}

#[tokio::test]
async fn one_for_all_restarts_the_siblings_too() {
    let (sup, mut rx, cells) = supervise(Strategy::OneForAll, RestartPolicy::default(), 3).await;
    cells[1].kill();
    let mut restarted = Vec::new();
    let mut stopped = Vec::new();
    while restarted.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Seen::Started(i, _) => restarted.push(i),
            Seen::Stopped(i) => stopped.push(i),
            Seen::Event(_) => {}
        }
    }
    stopped.sort_unstable();
    assert_eq!(stopped, vec![0, 1, 2]);
    restarted.sort_unstable();
    assert_eq!(restarted, vec![0, 1, 2]);
    for cell in &cells {
        assert_eq!(cell.get_status(), ActorStatus::Stopped);
    }
    sup.stop(None);
}

fn crash(cell: &ActorCell) {
    let actor: ActorRef<CrashMsg> = cell.clone().into();
    actor.cast(CrashMsg::Panic).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_waits_out_the_backoff() {
    let policy = RestartPolicy {
        backoff: crate::backoff::Backoff::new(ms(100), ms(1000), 0.0),
        ..RestartPolicy::default()
    };
    let (sup, mut rx, cells) = supervise(Strategy::OneForOne, policy, 1).await;
    // Crashes at once after its start: a rapid failure, so the restart waits 100 ms.
    let before = Instant::now();
    crash(&cells[0]);
    let (_, cell) = next_start(&mut rx).await;
    assert!(
        before.elapsed() >= ms(100),
        "restarted after {:?}",
        before.elapsed()
    );
    // And again: 200 ms.
    let before = Instant::now();
    crash(&cell);
    let (_, cell) = next_start(&mut rx).await;
    assert!(
        before.elapsed() >= ms(200),
        "restarted after {:?}",
        before.elapsed()
    );
    // Killed from outside right after a restart: not its own failure, so no backoff.
    let before = Instant::now();
    cell.kill();
    let _ = next_start(&mut rx).await;
    assert!(
        before.elapsed() < ms(100),
        "a killed child waited {:?}",
        before.elapsed()
    );
    sup.stop(None);
}

#[tokio::test]
async fn exceeding_the_intensity_escalates_to_the_parent() {
    let policy = RestartPolicy {
        max_restarts: 2,
        stable_after: Duration::ZERO,
        ..RestartPolicy::default()
    };
    let (sup, mut rx, cells) = supervise(Strategy::OneForOne, policy, 1).await;
    let mut cell = cells[0].clone();
    for _ in 0..2 {
        cell.kill();
        cell = next_start(&mut rx).await.1;
    }
    cell.kill();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
        {
            Some(Seen::Event(SupervisorEvent::Escalated { restarts, .. })) => {
                assert_eq!(restarts, 2);
                break;
            }
            Some(Seen::Started(..)) => panic!("restarted past the intensity limit"),
            _ => {}
        }
    }
    let mut waited = 0;
    while sup.get_status() != ActorStatus::Stopped {
        tokio::time::sleep(ms(10)).await;
        waited += 1;
        assert!(waited < 500, "the supervisor did not fail");
    }
}

#[tokio::test]
async fn an_escalation_is_handled_by_the_parent_supervisor() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let observer: Arc<dyn SupervisorObserver> = Arc::new(Recorder(Mutex::new(tx)));
    let inner_policy = RestartPolicy {
        max_restarts: 1,
        stable_after: Duration::ZERO,
        ..RestartPolicy::default()
    };
    let inner = ChildSpec::new("inner", move |parent| {
        let args = SupervisorArgs {
            name: "inner".into(),
            strategy: Strategy::OneForOne,
            policy: inner_policy,
            children: vec![crasher("c0", 0)],
            observer: Some(Arc::clone(&observer)),
            on_give_up: OnGiveUp::Escalate,
        };
        Box::pin(async move {
            let (sup, _) = Actor::spawn_linked(None, Supervisor, args, parent).await?;
            Ok(sup.get_cell())
        })
    });
    let (outer, _) = Actor::spawn(
        None,
        Supervisor,
        SupervisorArgs {
            name: "outer".into(),
            strategy: Strategy::OneForOne,
            policy: RestartPolicy::default(),
            children: vec![inner],
            observer: None,
            on_give_up: OnGiveUp::Escalate,
        },
    )
    .await
    .unwrap();
    let first = match rx.recv().await.unwrap() {
        Seen::Started(_, cell) => cell,
        other => panic!("unexpected {other:?}"),
    };
    // One restart is allowed; the second death makes the inner supervisor give up...
    first.kill();
    let (_, second) = next_start(&mut rx).await;
    second.kill();
    // ...and the outer one starts it again, with a fresh child.
    let mut escalated = false;
    let third = loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Seen::Event(SupervisorEvent::Escalated { .. }) => escalated = true,
            Seen::Started(_, cell) => break cell,
            _ => {}
        }
    };
    assert!(escalated, "the inner supervisor escalated");
    assert_eq!(ping(&third).await, 0, "the restarted subtree serves");
    let children = ractor::call_t!(outer, SupervisorMsg::Children, 1000).unwrap();
    assert_eq!(
        children[0].restarts, 1,
        "the outer supervisor restarted the inner one once"
    );
    outer.stop_and_wait(None, None).await.unwrap();
}

mod cooling;

mod proptests;
