//! One node's life: start the cluster, serve the edge, and shut down along one path within one
//! deadline: stop accepting, finish in-flight requests, leave the cluster.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout};
use troupe_runtime::Runtime;
use troupe_runtime::echo::Echo;
use troupe_runtime::entity::Entity;
use troupe_runtime::entity::EntityService;
use troupe_runtime::kv::Kv;
use troupe_runtime::probe;

use crate::config::NodeConfig;
use crate::edge::{self, AppState};
use crate::secrets::{self, SecretSource};

mod http;

/// How long the last spans may take to leave at shutdown.
const TRACES_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What `troupe node` was asked to run.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node's id in the configuration.
    pub id: String,
    /// Listen here instead of the configured HTTP address.
    pub http_addr: Option<SocketAddr>,
}

/// Errors of [`run`] that mean "the configuration is wrong" (exit 64) rather than "it failed".
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BadConfig(#[from] pub crate::config::ConfigError);

/// Runs node `options.id` until `shutdown` completes, then shuts it down gracefully.
pub async fn run(
    config: NodeConfig,
    options: NodeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let entry = config.node(&options.id).map_err(BadConfig)?.clone();
    let (cookie, cookie_source) = secrets::cluster_cookie(&config).map_err(BadConfig)?;
    match &cookie_source {
        SecretSource::File {
            path,
            generated: true,
        } => tracing::warn!(
            path = %path.display(),
            "generated a cluster cookie; nodes on other machines need the same one (TROUPE_COOKIE)"
        ),
        source => tracing::debug!(?source, "cluster cookie loaded"),
    }
    let mut settings = config
        .runtime_settings(&options.id, cookie)
        .map_err(BadConfig)?;
    edge::declare_services(&mut settings);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&entry.data_dir)
        .with_context(|| format!("cannot create data directory {}", entry.data_dir.display()))?;

    let http_addr = options.http_addr.unwrap_or(entry.http_addr);
    let listener = TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot listen for HTTP on {http_addr}"))?;
    if !http_addr.ip().is_loopback() {
        tracing::warn!(%http_addr, "the edge listens beyond this machine and its admin routes are not authenticated yet");
    }
    // Before the runtime starts: its store registers its series at open.
    let metrics = crate::metrics::install();
    // Dropped (aborting the task) however this function returns.
    let mut upkeep = tokio::task::JoinSet::new();
    upkeep.spawn(crate::metrics::upkeep(metrics.clone()));
    let traces = config
        .otlp_traces_url
        .as_deref()
        .and_then(|url| crate::traces::start(url, &options.id));
    let runtime = Runtime::start(settings).await?;
    runtime.host(Echo).await?;
    runtime.host(EntityService::<Kv>::new()).await?;
    let business = crate::bootstrap::host_services(&runtime, config.opening_balance_cents).await?;
    if !runtime.shard_map(probe::Probe::NAME).is_empty()
        && !runtime.shard_map(probe::Tally::NAME).is_empty()
    {
        // The event bus's own pair, when configured: subscribed before either is hosted.
        runtime.subscribe::<probe::Tally, probe::Apply>(
            probe::SUBSCRIPTION,
            probe::TOPIC,
            probe::to_tally,
        )?;
        runtime.host(EntityService::<probe::Tally>::new()).await?;
        runtime.host(EntityService::<probe::Probe>::new()).await?;
    }
    tracing::info!(
        node = %entry.id,
        %http_addr,
        cluster_addr = %entry.cluster_addr,
        data_dir = %entry.data_dir.display(),
        config = %config.source,
        "node started"
    );

    let http_addrs: HashMap<_, _> = config
        .nodes
        .iter()
        .map(|n| (n.id.to_string(), n.http_addr))
        .collect();
    let tokens = crate::auth::tokens(&config).map_err(BadConfig)?;
    let state = AppState::new(runtime.clone(), tokens, http_addrs, metrics);
    state.host_services().await?;
    if business {
        let (email, password, source) =
            crate::bootstrap::admin_credentials(&config).map_err(BadConfig)?;
        tracing::info!(%email, ?source, "administrator account");
        upkeep.spawn(crate::bootstrap::ensure_admin(
            state.clone(),
            email,
            password,
        ));
    }
    let app = edge::router(state, &config.http);

    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<Instant>();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: no new requests, finishing in-flight ones");
        let _ = stopping_tx.send(Instant::now());
    };
    let serve = http::serve(listener, app, graceful);
    tokio::pin!(serve);
    let grace = config.http.shutdown_grace;
    let started_stopping = tokio::select! {
        () = &mut serve => Instant::now(),
        Ok(at) = stopping_rx => {
            if timeout(grace, &mut serve).await.is_err() {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "in-flight requests did not finish in time; dropping them");
            }
            at
        }
    };
    let left = grace.saturating_sub(started_stopping.elapsed());
    runtime
        .shutdown(left.max(std::time::Duration::from_millis(100)))
        .await;
    if let Some(traces) = traces {
        crate::traces::stop(traces, TRACES_GRACE).await;
    }
    tracing::info!(
        elapsed_ms = started_stopping.elapsed().as_millis() as u64,
        "node stopped"
    );
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this node");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "stop requested"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "stop requested"),
    }
}
