//! Fault hooks: drop or delay the traffic from this node to chosen peers.
//!
//! Tests and the lab flip these at run time to cut links (a partition is a set of dropped
//! links on each side) or slow them down, without touching the protocols.

use conclave_core::NodeId;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What happens to traffic on one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkFault {
    /// Drop every payload.
    pub drop: bool,
    /// Hold every payload this long before sending it.
    pub delay: Duration,
}

/// Shared, cheaply cloned fault settings for the outgoing links of one node.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    links: Arc<RwLock<BTreeMap<NodeId, LinkFault>>>,
}

impl Faults {
    pub fn set(&self, peer: NodeId, fault: LinkFault) {
        let mut links = self.links.write().expect("faults lock poisoned");
        if fault == LinkFault::default() {
            links.remove(&peer);
        } else {
            links.insert(peer, fault);
        }
    }

    pub fn clear(&self) {
        self.links.write().expect("faults lock poisoned").clear();
    }

    pub fn get(&self, peer: NodeId) -> LinkFault {
        self.links.read().expect("faults lock poisoned").get(&peer).copied().unwrap_or_default()
    }
}
