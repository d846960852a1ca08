//! Agreeing on a placement at start: this node's record, and when it differs from the
//! configuration, every other node's, asked through the built-in `troupe.placement` service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Duration;

use super::ledger::{Answer, Decided, Recorded, decide};
use super::table::{PlacementView, ShardTable};
use crate::cluster::NodeId;
use crate::runtime::Runtime;
use crate::service::{CallOptions, MemberInfo, RequestContext, Service, ServiceError, ServiceSpec};
use crate::store::Store;

/// How long one question to a peer may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between rounds of questions to peers that did not answer yet.
const ASK_EVERY: Duration = Duration::from_millis(100);

/// The store record of a service's placement.
fn record_key(service: &str) -> String {
    format!("placement/{service}")
}

/// What this node says about `service`: its record, and whether it holds data of it.
pub(crate) async fn local_answer(store: Option<&Store>, service: &str) -> Result<Answer, String> {
    let Some(store) = store.cloned() else {
        return Ok(Answer {
            recorded: None,
            has_data: false,
        });
    };
    let service = service.to_string();
    tokio::task::spawn_blocking(move || {
        let recorded = store
            .record::<Recorded>(&record_key(&service))
            .map_err(|e| e.to_string())?;
        let has_data = store
            .has_data(&format!("{service}/"))
            .map_err(|e| e.to_string())?;
        Ok(Answer { recorded, has_data })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A question to another node: what do you say about this service?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ask {
    service: String,
}

/// The built-in service that answers [`Ask`] from this node's store.
pub(crate) struct PlacementService {
    store: Option<Store>,
}

impl PlacementService {
    pub(crate) fn new(store: Option<Store>) -> Self {
        Self { store }
    }
}

impl Service for PlacementService {
    const NAME: &'static str = "troupe.placement";
    type Request = Ask;
    type Response = Result<Answer, String>;
    type State = ();

    async fn init(&self, _member: &MemberInfo) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn handle(
        &self,
        _state: &mut (),
        request: Ask,
        _cx: &RequestContext<'_>,
    ) -> Result<Answer, String> {
        local_answer(self.store.as_ref(), &request.service).await
    }
}

/// What one sharded service needs to agree on its placement.
pub(crate) struct Agreement {
    /// The service.
    pub(crate) service: String,
    /// Its placement as the configuration computes it.
    pub(crate) configured: Recorded,
    /// The nodes that host it now.
    pub(crate) hosts: Vec<String>,
    /// Every other configured node.
    pub(crate) peers: Vec<NodeId>,
}

/// The shard tables of this node's sharded services, and the tasks still agreeing on them.
#[derive(Default)]
pub(crate) struct Placements {
    /// A std mutex: held to look up or insert a table only.
    tables: Mutex<HashMap<String, Arc<ShardTable>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Placements {
    /// The table of `service`, if it is sharded.
    pub(crate) fn table(&self, service: &str) -> Option<Arc<ShardTable>> {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
            .cloned()
    }

    /// Every sharded service's placement, by name.
    pub(crate) fn views(&self) -> Vec<(String, PlacementView)> {
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let mut views: Vec<_> = tables.iter().map(|(s, t)| (s.clone(), t.view())).collect();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        views
    }

    /// Keeps `task` to stop it at shutdown.
    pub(crate) fn track(&self, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// Stops the agreements still running.
    pub(crate) fn stop(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }

    /// Decides the placement of `agreement.service`: at once if this node's record is the
    /// configured placement, else in a task that asks every other node first.
    pub(crate) async fn begin(&self, runtime: &Runtime, agreement: Agreement) {
        let store = runtime.store().cloned();
        let mine = match local_answer(store.as_ref(), &agreement.service).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(service = %agreement.service, error = %e, "cannot read the recorded shard placement");
                Answer {
                    recorded: None,
                    has_data: true,
                }
            }
        };
        let me = runtime.node().to_string();
        let peers: Vec<String> = agreement.peers.iter().map(NodeId::to_string).collect();
        let table = Arc::new(ShardTable::waiting(&agreement.service, peers));
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agreement.service.clone(), Arc::clone(&table));
        if mine.recorded.as_ref() == Some(&agreement.configured) || agreement.peers.is_empty() {
            let answers = vec![(me, mine.clone())];
            settle(store.as_ref(), &table, &agreement, &mine, &answers).await;
            return;
        }
        tracing::warn!(
            service = %agreement.service,
            "the configured shard placement differs from the one recorded here: asking the other nodes where the data is"
        );
        let runtime = runtime.clone();
        let task = tokio::spawn(async move {
            let answers = ask_all(&runtime, &table, &agreement, (me, mine.clone())).await;
            settle(store.as_ref(), &table, &agreement, &mine, &answers).await;
        });
        self.track(task);
    }
}

/// Hosts `troupe.placement` and starts agreeing on the placement of every sharded service in
/// `services`.
pub(crate) async fn start(
    runtime: &Runtime,
    services: &HashMap<String, ServiceSpec>,
) -> crate::Result<()> {
    runtime.core.registry.declare(
        PlacementService::NAME,
        ServiceSpec {
            members_per_node: 1,
            ..ServiceSpec::default()
        },
    );
    runtime
        .host(PlacementService::new(runtime.store().cloned()))
        .await?;
    let nodes = &runtime.core.nodes;
    let me = runtime.node();
    for (name, spec) in services {
        let Some(n) = spec.shards else { continue };
        let hosts = crate::runtime::hosts(spec, nodes);
        let agreement = Agreement {
            service: name.clone(),
            configured: Recorded {
                shards: n,
                owners: super::placement(name, n, &hosts)
                    .iter()
                    .map(NodeId::to_string)
                    .collect(),
            },
            hosts: hosts.iter().map(NodeId::to_string).collect(),
            peers: nodes.iter().filter(|n| *n != me).cloned().collect(),
        };
        runtime.core.placements.begin(runtime, agreement).await;
    }
    Ok(())
}

/// Asks every peer until each has answered.
async fn ask_all(
    runtime: &Runtime,
    table: &ShardTable,
    agreement: &Agreement,
    mine: (String, Answer),
) -> Vec<(String, Answer)> {
    let router = runtime.router::<PlacementService>();
    let mut answers = vec![mine];
    let mut waiting = agreement.peers.clone();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for peer in waiting {
            let ask = Ask {
                service: agreement.service.clone(),
            };
            let options = CallOptions::timeout(ASK_TIMEOUT).on(peer.clone());
            match router.call(ask, options.idempotent()).await {
                Ok(Ok(answer)) => answers.push((peer.to_string(), answer)),
                Ok(Err(e)) => {
                    tracing::warn!(service = %agreement.service, %peer, error = %e, "a node cannot say where its shards are");
                    still.push(peer);
                }
                Err(_) => still.push(peer),
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            table.still_waiting(waiting.iter().map(NodeId::to_string).collect());
            tokio::time::sleep(ASK_EVERY).await;
        }
    }
    answers
}

/// Decides, records what was agreed, and opens the table.
async fn settle(
    store: Option<&Store>,
    table: &ShardTable,
    agreement: &Agreement,
    mine: &Answer,
    answers: &[(String, Answer)],
) {
    let service = &agreement.service;
    let decided: Decided = decide(service, &agreement.configured, &agreement.hosts, answers);
    if let (Some(store), Some(record)) = (store, &decided.record)
        && mine.recorded.as_ref() != Some(record)
        && let Err(e) = store.put_record(&record_key(service), record).await
    {
        tracing::error!(%service, error = %e, "cannot record the agreed shard placement");
    }
    if let Some(why) = &decided.refused {
        tracing::error!(%service, reason = %why, "the service is refused on this node");
    } else if !decided.pending.is_empty() {
        tracing::warn!(
            %service,
            pending_moves = decided.pending.len(),
            "the configuration moves shards away from their data: they stay where their data is (moving data is not supported yet)"
        );
    }
    table.agree(decided);
}
