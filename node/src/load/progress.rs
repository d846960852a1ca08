//! Live progress while orders flow: an `indicatif` bar over the run's duration when stdout is a
//! terminal, else a plain line every few seconds (to stderr with `--json`, so that stdout holds
//! the report alone).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio::time::Instant;

use super::drive::Drive;

/// How often plain lines are written.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// One status line: counts and throughput over the last interval.
fn line(drive: &Drive, accepted_before: u64, interval: Duration) -> (String, u64) {
    let c = &drive.counters;
    let accepted = c.accepted.load(Ordering::Relaxed);
    let rate = (accepted - accepted_before) as f64 / interval.as_secs_f64().max(0.001);
    let text = format!(
        "{} sent, {} accepted ({rate:.0}/s), {} final, {} errors, {} retries",
        c.sent.load(Ordering::Relaxed),
        accepted,
        c.finished.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
        c.retries.load(Ordering::Relaxed),
    );
    (text, accepted)
}

/// Shows progress until `stop` turns true.
pub(crate) async fn show(
    drive: Arc<Drive>,
    duration: Duration,
    json: bool,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let bar = (!json && std::io::stdout().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(
            Some(duration.as_secs().max(1)),
            ProgressDrawTarget::stdout(),
        );
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} s  {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let every = if bar.is_some() {
        Duration::from_millis(500)
    } else {
        PLAIN_EVERY
    };
    let mut before = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        let (text, accepted) = line(&drive, before, every);
        before = accepted;
        let elapsed = started.elapsed();
        match &bar {
            Some(bar) => {
                bar.set_position(elapsed.as_secs().min(duration.as_secs()));
                bar.set_message(text);
            }
            None => {
                let text = format!("[{:>6.1} s] {text}", elapsed.as_secs_f64());
                if json {
                    eprintln!("{text}");
                } else {
                    let _ = writeln!(std::io::stdout(), "{text}");
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
