#![allow(clippy::unwrap_used)] // a panic is how a test fails

use super::*;

fn saga() -> SagaState<()> {
    SagaState::new(
        (),
        vec![
            StepSpec::compensable("reserve:a"),
            StepSpec::compensable("reserve:b"),
            StepSpec::compensable("charge"),
            StepSpec::final_step("commit"),
        ],
        1,
    )
}

/// Sends the current work and answers it.
fn step(s: &mut SagaState<()>, outcome: Outcome) -> bool {
    let (work, _) = s.dispatched(2).unwrap();
    s.answer(work, &outcome, 3)
}

#[test]
fn every_step_done_completes_and_the_history_says_so() {
    let mut s = saga();
    for _ in 0..4 {
        assert!(step(&mut s, Outcome::Done));
    }
    assert_eq!(s.phase, Phase::Completed);
    assert!(
        s.steps
            .iter()
            .all(|st| st.status == StepStatus::Done && st.attempts == 1)
    );
    let path: Vec<&str> = s.history.iter().map(|t| t.to.as_str()).collect();
    assert_eq!(
        path,
        [
            "running:reserve:a",
            "running:reserve:b",
            "running:charge",
            "running:commit",
            "completed"
        ]
    );
    assert_eq!(s.work(), None);
}

#[test]
fn a_refusal_undoes_what_was_done_newest_first_and_not_the_refused_step() {
    let mut s = saga();
    step(&mut s, Outcome::Done);
    step(&mut s, Outcome::Done);
    step(&mut s, Outcome::Refused("payment_declined".into()));
    assert_eq!(s.work(), Some(Work::Compensate(1)));
    step(&mut s, Outcome::Done);
    assert_eq!(s.work(), Some(Work::Compensate(0)));
    step(&mut s, Outcome::Done);
    assert_eq!(
        s.phase,
        Phase::Compensated {
            reason: "payment_declined".into()
        }
    );
    assert_eq!(s.steps[2].status, StepStatus::Failed);
    assert_eq!(
        s.steps[2].compensations, 0,
        "a refused step applied nothing"
    );
    assert_eq!(s.steps[3].attempts, 0, "never reached");
}

#[test]
fn a_refusal_at_the_first_step_compensates_at_once() {
    let mut s = saga();
    step(&mut s, Outcome::Refused("out_of_stock".into()));
    assert_eq!(
        s.phase,
        Phase::Compensated {
            reason: "out_of_stock".into()
        }
    );
}

#[test]
fn retries_keep_the_step_and_count_attempts_and_stale_answers_are_ignored() {
    let mut s = saga();
    assert!(!step(&mut s, Outcome::Retry("unavailable".into())));
    assert!(!step(&mut s, Outcome::Retry("timeout".into())));
    assert_eq!(s.work(), Some(Work::Act(0)));
    assert_eq!(s.attempt(), 2);
    assert_eq!(s.steps[0].last_error.as_deref(), Some("timeout"));
    // A late answer for work that is no longer current changes nothing.
    assert!(!s.answer(Work::Act(3), &Outcome::Done, 4));
    assert!(step(&mut s, Outcome::Done));
    assert!(
        !s.answer(Work::Act(0), &Outcome::Done, 5),
        "answered already"
    );
    assert_eq!(s.work(), Some(Work::Act(1)));
}

#[test]
fn an_abort_undoes_the_current_step_too_but_not_past_the_point_of_no_return() {
    let mut s = saga();
    step(&mut s, Outcome::Done);
    s.dispatched(2).unwrap(); // reserve:b sent, no answer yet: it may have been applied
    assert_eq!(s.abort("cancelled_by_user", 3), Ok(true));
    assert_eq!(s.work(), Some(Work::Compensate(1)));
    assert_eq!(s.abort("cancelled_by_user", 3), Ok(false), "aborting again");
    step(&mut s, Outcome::Done);
    step(&mut s, Outcome::Done);
    assert_eq!(
        s.phase,
        Phase::Compensated {
            reason: "cancelled_by_user".into()
        }
    );
    let mut late = saga();
    for _ in 0..3 {
        step(&mut late, Outcome::Done);
    }
    assert!(
        late.abort("cancelled_by_user", 3).is_err(),
        "commit cannot be undone"
    );
    step(&mut late, Outcome::Done);
    assert!(late.abort("cancelled_by_user", 3).is_err(), "completed");
}

#[test]
fn a_step_past_the_point_of_no_return_is_never_compensated() {
    let mut s = saga();
    for _ in 0..3 {
        step(&mut s, Outcome::Done);
    }
    assert!(!step(&mut s, Outcome::Refused("nope".into())));
    assert_eq!(s.work(), Some(Work::Act(3)), "retried until done");
}

#[test]
fn the_history_is_bounded_and_keeps_its_beginning() {
    let mut s = saga();
    for n in 0..1000 {
        s.note(n, format!("note {n}"));
    }
    assert_eq!(s.history.len(), MAX_HISTORY);
    assert_eq!(s.history[0].note, "started");
    assert_eq!(s.history.last().unwrap().note, "note 999");
}
