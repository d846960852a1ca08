//! `troupe.system`: the built-in service every node hosts, for operations that must run on a
//! given node, such as killing a member there for failure injection.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::registry::Registry;
use crate::runtime::KilledMember;
use crate::service::{MemberInfo, RequestContext, Service, ServiceError};

/// Node-local operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SystemRequest {
    /// Kill member `pid` of `service` on this node (or a random one), abruptly.
    Kill {
        /// The service.
        service: String,
        /// The member, or any.
        pid: Option<u64>,
    },
}

/// Answers to [`SystemRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SystemResponse {
    /// The members killed (none if there was no such member).
    Killed(Vec<KilledMember>),
}

/// The system service.
pub(crate) struct System {
    registry: Arc<Registry>,
}

impl System {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl Service for System {
    const NAME: &'static str = "troupe.system";
    type Request = SystemRequest;
    type Response = SystemResponse;
    type State = ();

    async fn init(&self, _member: &MemberInfo) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn handle(
        &self,
        _state: &mut (),
        request: SystemRequest,
        _cx: &RequestContext<'_>,
    ) -> SystemResponse {
        match request {
            SystemRequest::Kill { service, pid } => {
                let members = self.registry.local_cells(&service);
                let chosen = match pid {
                    Some(pid) => members.into_iter().find(|(slot, _)| slot.pid == pid),
                    None if members.is_empty() => None,
                    None => {
                        let i = rand::random_range(0..members.len());
                        members.into_iter().nth(i)
                    }
                };
                let Some((slot, cell)) = chosen else {
                    return SystemResponse::Killed(Vec::new());
                };
                tracing::warn!(service = %service, index = slot.index, pid = slot.pid, "killing a member on request (failure injection)");
                cell.kill();
                SystemResponse::Killed(vec![KilledMember {
                    service,
                    node: self.registry.node().to_string(),
                    index: slot.index,
                    pid: slot.pid,
                }])
            }
        }
    }
}
