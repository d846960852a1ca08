//! Durable timers: kept on disk, fired once after a crash, cancelled, and fired in the trace
//! of the command that set them.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_timer_is_kept_on_disk_fires_after_a_crash_and_only_once() {
    let mut accounts = Harness::<Account>::new().await.unwrap();
    accounts
        .ask(
            id("ann"),
            Remind {
                after_ms: 60_000,
                durable: false,
            },
        )
        .await
        .unwrap();
    accounts
        .ask(
            id("ann"),
            Remind {
                after_ms: 300,
                durable: true,
            },
        )
        .await
        .unwrap();
    let timers = accounts.timers().unwrap();
    assert_eq!(
        timers.len(),
        1,
        "only the durable one is on disk: {timers:?}"
    );
    assert_eq!(timers[0].1, "reminded");

    accounts.crash().await.unwrap();
    // Armed again from disk, it fires after its delay; so does the copy armed before the
    // "crash" (the harness's crash does not stop the process's tasks): a duplicate, as a
    // fire whose batch was lost in a real crash would be.
    wait_for("the durable timer to fire twice", async || {
        accounts.posted().len() == 2
    })
    .await;
    let fired = accounts.posted();
    assert!(fired.iter().all(|p| {
        let request: EntityRequest = crate::service::decode(&p.request).unwrap();
        request.command == "reminded" && request.timer.is_some()
    }));
    assert_eq!(accounts.deliver_to_self().await, Ok(2));
    assert_eq!(
        accounts.ask(id("ann"), Read).await.unwrap().reminders,
        1,
        "the second fire found its record gone and did nothing"
    );
    assert_eq!(
        accounts.timers().unwrap(),
        Vec::new(),
        "its record went with its batch"
    );
    // And once more, after the record is gone.
    accounts.inject(fired[0].clone());
    assert_eq!(accounts.deliver_to_self().await, Ok(1));
    assert_eq!(accounts.ask(id("ann"), Read).await.unwrap().reminders, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_runtime_tells_and_timers_reach_their_shards() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = one_node(dir.path(), &[Account::NAME]).await;
    runtime.host(EntityService::<Account>::new()).await.unwrap();
    let ann = runtime.entity::<Account>(id("ann"));
    ann.ask(Credit(100)).await.unwrap();
    // 20 payees, spread over the 4 shards.
    for i in 0..20 {
        let to = format!("payee-{i}");
        ann.ask(Pay { to, amount: 1 }).await.unwrap();
    }
    for i in 0..20 {
        let payee = runtime.entity::<Account>(format!("payee-{i}"));
        wait_for("the payee to be credited", async || {
            payee.ask(Read).await.is_ok_and(|b| b.balance == 1)
        })
        .await;
    }
    ann.ask(Remind {
        after_ms: 50,
        durable: true,
    })
    .await
    .unwrap();
    ann.ask(Remind {
        after_ms: 50,
        durable: false,
    })
    .await
    .unwrap();
    wait_for("both timers to fire", async || {
        ann.ask(Read).await.is_ok_and(|b| b.reminders == 2)
    })
    .await;
    assert_eq!(ann.ask(Read).await.unwrap().balance, 80);
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_durable_timer_is_gone_from_disk_and_never_fires() {
    let mut accounts = Harness::<Account>::new().await.unwrap();
    let early = accounts
        .ask(id("ann"), Snooze { after_ms: 200 })
        .await
        .unwrap();
    let late = accounts
        .ask(id("ann"), Snooze { after_ms: 600 })
        .await
        .unwrap();
    assert_eq!(accounts.timers().unwrap().len(), 2);
    // A refused command cancels nothing.
    let refused = Forget {
        timer: early.clone(),
        refuse: true,
    };
    assert!(accounts.ask(id("ann"), refused).await.is_err());
    assert_eq!(accounts.timers().unwrap().len(), 2);
    let forget = Forget {
        timer: early.clone(),
        refuse: false,
    };
    accounts.ask(id("ann"), forget).await.unwrap();
    assert_eq!(accounts.timers().unwrap().len(), 1, "its record is deleted");
    // The later timer fires; the cancelled one, due before it, never did.
    wait_for("the later timer to fire", async || {
        !accounts.posted().is_empty()
    })
    .await;
    let fired: Vec<Option<Vec<u8>>> = accounts
        .posted()
        .iter()
        .map(|p| {
            let request: EntityRequest = crate::service::decode(&p.request).unwrap();
            request.timer
        })
        .collect();
    assert_eq!(fired, vec![Some(late.0.clone())]);
    // Nothing of the cancelled one is armed from disk after a crash either.
    assert_eq!(accounts.deliver_to_self().await, Ok(1));
    accounts.crash().await.unwrap();
    assert_eq!(accounts.timers().unwrap(), Vec::new());
    assert_eq!(accounts.ask(id("ann"), Read).await.unwrap().reminders, 1);
}

#[tokio::test]
async fn a_timer_cancelled_before_its_batch_was_durable_is_never_armed() {
    let armed = Arc::new(Armed::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&str>();
    armed.scheduled(b"t/a");
    armed.scheduled(b"t/b");
    armed.cancel(b"t/a");
    let (a, b) = (tx.clone(), tx);
    armed.arm(b"t/a".to_vec(), async move {
        a.send("a").unwrap();
    });
    armed.arm(b"t/b".to_vec(), async move {
        b.send("b").unwrap();
    });
    // Both senders are gone once b ran and a was dropped unarmed: the channel closes.
    let mut ran = Vec::new();
    while let Some(which) = rx.recv().await {
        ran.push(which);
    }
    assert_eq!(ran, vec!["b"]);
    wait_for("the finished task to be forgotten", async || {
        armed.len() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_fires_in_the_trace_of_the_command_that_set_it_also_when_armed_again_after_a_crash()
{
    let mut accounts = Harness::<Account>::new().await.unwrap();
    let trace = crate::telemetry::TraceContext::new_root();
    let remind = Remind {
        after_ms: 300,
        durable: true,
    };
    crate::telemetry::scope(trace, accounts.ask(id("ann"), remind))
        .await
        .unwrap();
    accounts.crash().await.unwrap();
    // The copy armed before the "crash" and the one armed again from disk both fire.
    wait_for("the durable timer to fire twice", async || {
        accounts.posted().len() == 2
    })
    .await;
    let traces: Vec<_> = accounts
        .posted()
        .iter()
        .map(|p| p.trace.map(|t| t.trace_id))
        .collect();
    assert_eq!(traces, vec![Some(trace.trace_id); 2]);
}
