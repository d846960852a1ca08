use tokio::time::{Duration, Instant};

use super::*;
use crate::cluster::NodeId;

fn info() -> MemberInfo {
    MemberInfo {
        service: Echo::NAME,
        node: NodeId::try_new("n1").unwrap(),
        index: 0,
        sharded: false,
        store: None,
        outbound: None,
    }
}

fn delayed(delay_ms: u32) -> EchoRequest {
    EchoRequest {
        payload: b"hi".to_vec(),
        delay_ms,
    }
}

async fn state() -> (u64, std::sync::Arc<str>) {
    Echo.init(&info()).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_deadline_has_passed_does_no_work() {
    let member = info();
    let mut state = state().await;
    let cx = RequestContext::new(
        &member,
        None,
        Some(Instant::now() - Duration::from_millis(1)),
    );
    let started = Instant::now();
    let answer = Echo.handle(&mut state, delayed(5_000), &cx).await;
    assert_eq!(answer, Err(EchoError::DeadlinePassed));
    assert_eq!(started.elapsed(), Duration::ZERO, "it did not wait");
    assert_eq!(state.0, 0, "it was not counted as handled");
}

#[tokio::test(start_paused = true)]
async fn a_delayed_echo_stops_at_the_deadline() {
    let member = info();
    let mut state = state().await;
    let started = Instant::now();
    let cx = RequestContext::new(&member, None, Some(started + Duration::from_millis(50)));
    let answer = Echo.handle(&mut state, delayed(10_000), &cx).await;
    assert_eq!(answer, Err(EchoError::DeadlinePassed));
    assert_eq!(started.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn a_delayed_echo_within_its_deadline_answers_after_its_delay() {
    let member = info();
    let mut state = state().await;
    let started = Instant::now();
    let cx = RequestContext::new(&member, None, Some(started + Duration::from_secs(1)));
    let answer = Echo.handle(&mut state, delayed(20), &cx).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(20));
    assert_eq!(answer.payload, b"hi");
    assert_eq!(answer.handled, 1);

    // Without a deadline (a cast), the delay is the delay.
    let cx = RequestContext::new(&member, None, None);
    let started = Instant::now();
    let answer = Echo.handle(&mut state, delayed(300), &cx).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(answer.handled, 2);
}
