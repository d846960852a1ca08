//! The bare `ractor_cluster` baseline: this bench binary run as two peer processes.
//!
//! `--ractor-peer serve PORT` hosts one sink actor in a `pg` group and waits;
//! `--ractor-peer drive PORT MS` connects to it, waits for the sink to appear in the group,
//! then measures one-way casts (with a barrier call at the end), sequential calls, and calls
//! with 64 in flight, and prints the results as one JSON line.

use std::process::{Command, Stdio};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServer, RactorClusterMessage};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

const GROUP: &str = "bench.sink";

#[derive(RactorClusterMessage)]
enum PeerMsg {
    Hit(Vec<u8>),
    #[rpc]
    Echo(Vec<u8>, RpcReplyPort<Vec<u8>>),
    #[rpc]
    Count(RpcReplyPort<u64>),
}

struct PeerSink;

impl Actor for PeerSink {
    type Msg = PeerMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<PeerMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        ractor::pg::join(GROUP.to_string(), vec![myself.get_cell()]);
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<PeerMsg>,
        msg: PeerMsg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PeerMsg::Hit(_) => *count += 1,
            PeerMsg::Echo(payload, reply) => {
                let _ = reply.send(payload);
            }
            PeerMsg::Count(reply) => {
                let _ = reply.send(*count);
            }
        }
        Ok(())
    }
}

/// What the driver measured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Baseline {
    pub(crate) cast_per_s: f64,
    pub(crate) seq_p50_us: f64,
    pub(crate) seq_p99_us: f64,
    pub(crate) seq_per_s: f64,
    pub(crate) par_per_s: f64,
}

async fn node(port: u16) -> ActorRef<ractor_cluster::NodeServerMessage> {
    let server = NodeServer::new(
        port,
        super::COOKIE.into(),
        format!("peer{port}"),
        "127.0.0.1".into(),
        None,
        None,
    )
    .with_listen_addr("127.0.0.1".parse().unwrap());
    Actor::spawn(None, server, ()).await.unwrap().0
}

pub(crate) fn main(args: &[String]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match args {
            [role, port] if role == "serve" => {
                let _server = node(port.parse().unwrap()).await;
                let _ = Actor::spawn(None, PeerSink, ()).await.unwrap();
                println!("ready");
                // Serve until the parent closes our stdin.
                let _ = tokio::task::spawn_blocking(|| {
                    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                })
                .await;
            }
            [role, port, ms] if role == "drive" => {
                let server = node(super::free_port()).await;
                ractor_cluster::client_connect(&server, format!("127.0.0.1:{port}"))
                    .await
                    .unwrap();
                let started = Instant::now();
                let sink: ActorRef<PeerMsg> = loop {
                    let remote = ractor::pg::get_members(&GROUP.to_string())
                        .into_iter()
                        .find(|a| !a.get_id().is_local());
                    if let Some(cell) = remote {
                        break cell.into();
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "peer never appeared"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                let ms: u64 = ms.parse().unwrap();
                println!(
                    "{}",
                    serde_json::to_string(&drive(sink, Duration::from_millis(ms)).await).unwrap()
                );
            }
            _ => panic!("usage: --ractor-peer serve PORT | drive PORT MS"),
        }
    });
}

async fn drive(sink: ActorRef<PeerMsg>, run: Duration) -> Baseline {
    let payload = vec![0xab_u8; 16];
    // One-way casts, then a barrier call (messages from one sender arrive in order).
    let before = ractor::call_t!(sink, PeerMsg::Count, 30_000).unwrap();
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < run {
        for _ in 0..64 {
            sink.cast(PeerMsg::Hit(payload.clone())).unwrap();
        }
        sent += 64;
        // Let the session actors drain: an unbounded send loop would only measure the queue.
        tokio::task::yield_now().await;
    }
    let after = ractor::call_t!(sink, PeerMsg::Count, 120_000).unwrap();
    let cast_per_s = (after - before) as f64 / started.elapsed().as_secs_f64();
    assert_eq!(after - before, sent, "every cast arrived");

    let mut lat = Vec::new();
    let started = Instant::now();
    while started.elapsed() < run {
        let t = Instant::now();
        ractor::call_t!(sink, PeerMsg::Echo, 5000, payload.clone()).unwrap();
        lat.push(t.elapsed().as_micros() as f64);
    }
    let seq_per_s = lat.len() as f64 / started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];

    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let sink = sink.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < run {
                    ractor::call_t!(sink, PeerMsg::Echo, 5000, payload.clone()).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut calls = 0;
    for t in tasks {
        calls += t.await.unwrap();
    }
    Baseline {
        cast_per_s,
        seq_p50_us: q(0.5),
        seq_p99_us: q(0.99),
        seq_per_s,
        par_per_s: calls as f64 / started.elapsed().as_secs_f64(),
    }
}

fn spawn_serve(port: u16) -> std::process::Child {
    let mut serve = Command::new(std::env::current_exe().unwrap())
        .args(["--ractor-peer", "serve", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(serve.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    serve
}

/// Runs the baseline `rounds` times and returns the median of each figure.
pub(crate) fn run_pair(rounds: usize, ms: u64) -> Baseline {
    let port = super::free_port();
    let mut serve = spawn_serve(port);
    let mut results = Vec::new();
    for _ in 0..rounds {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--ractor-peer", "drive", &port.to_string(), &ms.to_string()])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        results.push(serde_json::from_str::<Baseline>(line).unwrap());
    }
    let _ = serve.kill();
    let _ = serve.wait();
    let m = |f: fn(&Baseline) -> f64| super::median(results.iter().map(f).collect());
    Baseline {
        cast_per_s: m(|b| b.cast_per_s),
        seq_p50_us: m(|b| b.seq_p50_us),
        seq_p99_us: m(|b| b.seq_p99_us),
        seq_per_s: m(|b| b.seq_per_s),
        par_per_s: m(|b| b.par_per_s),
    }
}

/// The resident memory of an idle bare `ractor_cluster` node process, in KiB.
pub(crate) fn idle_rss_kib() -> u64 {
    let port = super::free_port();
    let mut serve = spawn_serve(port);
    std::thread::sleep(Duration::from_secs(1));
    let rss = super::rss_kib(serve.id());
    let _ = serve.kill();
    let _ = serve.wait();
    rss
}
