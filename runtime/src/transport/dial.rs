//! Dialling from state: the reconciler that keeps each peer's link in line with the failure
//! detector's view, and the per-peer dialler (see the parent module's docs).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::{Duration, Instant, timeout};

use super::handshake::{self, Keys};
use super::{Core, RECONCILE_EVERY};
use crate::backoff::Backoff;
use crate::cluster::{Cluster, ClusterEvent, NodeId, NodeStatus};

/// Keeps the links in line with the failure detector's view: see the module docs.
pub(super) async fn reconcile(
    core: Arc<Core>,
    mut events: broadcast::Receiver<ClusterEvent>,
    cluster: Cluster,
) {
    // Each peer's status at the last look: a link is closed when its peer goes down, not
    // when it merely is down (a peer that restarts dials before this node sees it up again).
    let mut last_seen: HashMap<NodeId, NodeStatus> = HashMap::new();
    loop {
        if core.stopped.load(Ordering::Acquire) {
            return;
        }
        reconcile_once(&core, &cluster, &mut last_seen);
        tokio::select! {
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
            _ = core.wake.notified() => {}
            event = events.recv() => match event {
                Ok(event) => match event.status {
                    NodeStatus::Up => {
                        if let Some(slot) = core.links.get(&event.node) {
                            // Heard from anew: a dialler waiting out its backoff tries now.
                            slot.kick.notify_one();
                        }
                    }
                    // Gone down and perhaps up again before the next look: close now.
                    NodeStatus::Down => close(&core, &event.node),
                    NodeStatus::Suspect => {}
                },
                // Missed events do not matter: the view is read again at once.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    // Membership stopped: nothing more to follow.
                    return;
                }
            },
        }
    }
}

fn close(core: &Core, peer: &NodeId) {
    if let Some(link) = core.link(peer) {
        link.close("peer is down");
        core.forget_link(&link);
    }
}

/// One look at the view: dial, close, and note peers up without a link.
fn reconcile_once(
    core: &Arc<Core>,
    cluster: &Cluster,
    last_seen: &mut HashMap<NodeId, NodeStatus>,
) {
    let view = cluster.view();
    let now = Instant::now();
    let mut missing = core.missing_since.lock().unwrap_or_else(|p| p.into_inner());
    for peer in view.nodes.iter().filter(|p| p.id != core.me) {
        let before = last_seen.insert(peer.id.clone(), peer.status);
        let went_down = peer.status == NodeStatus::Down
            && matches!(before, Some(NodeStatus::Up | NodeStatus::Suspect));
        let link = core.link(&peer.id);
        match peer.status {
            NodeStatus::Up if link.is_none() => {
                missing.entry(peer.id.clone()).or_insert(now);
                if core.me < peer.id {
                    tokio::spawn(dial(Arc::clone(core), peer.id.clone(), cluster.clone()));
                }
            }
            NodeStatus::Down => {
                missing.remove(&peer.id);
                if went_down && link.is_some() {
                    close(core, &peer.id);
                }
            }
            _ => {
                missing.remove(&peer.id);
            }
        }
    }
}

/// Dials `peer` until a link is up or the peer is no longer up; at most one dialler per peer.
async fn dial(core: Arc<Core>, peer: NodeId, cluster: Cluster) {
    let Some(addr) = core.settings.peers.get(&peer).copied() else {
        return;
    };
    // One dialler per peer: a second one would replace the first one's link, failing the
    // calls waiting on it.
    if !core
        .dialing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(peer.clone())
    {
        return;
    }
    dial_until_linked(&core, &peer, addr, &cluster).await;
    core.dialing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&peer);
}

async fn dial_until_linked(core: &Arc<Core>, peer: &NodeId, addr: SocketAddr, cluster: &Cluster) {
    let Some(slot) = core.links.get(peer) else {
        return;
    };
    let backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1), 0.2);
    let mut attempt = 0;
    loop {
        if core.stopped.load(Ordering::Acquire) || core.link(peer).is_some() {
            return;
        }
        let up = cluster
            .view()
            .peer(peer.as_str())
            .is_some_and(|p| p.status == NodeStatus::Up);
        if !up {
            return;
        }
        match connect(core, peer, addr).await {
            Ok((stream, keys)) => {
                core.install(peer.clone(), stream, keys);
                return;
            }
            Err(e) => {
                tracing::debug!(peer = %peer, %addr, attempt, error = %e, "link dial failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.delay_random(attempt)) => attempt += 1,
            _ = slot.kick.notified() => attempt = 0,
        }
    }
}

/// One dial: a TCP connection within the connect timeout, then the handshake within its own.
async fn connect(
    core: &Core,
    peer: &NodeId,
    addr: SocketAddr,
) -> std::io::Result<(TcpStream, Keys)> {
    let mut stream = timeout(core.settings.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let keys = timeout(
        core.settings.handshake_timeout,
        handshake::dial(&mut stream, &core.me, peer, &core.psk),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))?
    .map_err(std::io::Error::other)?;
    Ok((stream, keys))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::registry::Registry;
    use crate::transport::TransportSettings;
    use crate::transport::handshake::Psk;

    #[tokio::test]
    async fn a_dial_into_a_black_hole_gives_up_at_the_connect_timeout() {
        // A listener whose accept queue is full drops new connection attempts: on loopback,
        // the nearest thing to a peer behind a partition.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        let start = Instant::now();
        loop {
            match timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => held.push(stream),
                Ok(Err(e)) => panic!("connect failed: {e}"),
                Err(_) => break,
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the queue never filled"
            );
        }
        let peer = NodeId::try_new("n2").unwrap();
        let mut settings = TransportSettings::new(addr, HashMap::from([(peer.clone(), addr)]));
        settings.connect_timeout = Duration::from_millis(300);
        let me = NodeId::try_new("n1").unwrap();
        let core = Core::new(
            me.clone(),
            Psk::for_test("cookie"),
            settings,
            Arc::new(Registry::new(me)),
        );
        let started = Instant::now();
        let result = connect(&core, &peer, addr).await;
        let took = started.elapsed();
        assert!(result.is_err());
        // The handshake's own 3 s are not spent waiting for a connection that never comes:
        // the next try can start as soon as the partition heals.
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "gave up after {took:?}"
        );
    }
}
