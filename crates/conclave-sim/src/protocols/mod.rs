//! The seam between the simulator and each protocol: [`SimProtocol`], which builds replicas,
//! and [`Checker`], which watches them for broken invariants.
//!
//! # Adding a protocol
//!
//! 1. Create `src/protocols/<name>.rs`. Implement [`SimProtocol`] for the protocol's type and
//!    write its invariant checker (a `Default` type implementing [`Checker`]), with a test that
//!    shows the checker catching a planted bug. Export the type as `pub type Adapter = ...;`.
//! 2. Add the crate as an optional dependency behind a feature of the same name in this
//!    crate's `Cargo.toml` (paxos, totem and gossip are already declared), and the
//!    `#[cfg(feature = ...)] pub mod <name>;` line and the dispatch arms below.
//! 3. `cargo run --release -p conclave-sim --features <name> -- --protocol <name> --seeds 500`.
//!
//! The generic checks (state machine safety, linearizability of client histories when
//! `guarantees()` promise it, liveness and convergence after the faults stop) apply to every
//! protocol without any code in the adapter.

use crate::node::SimNode;
use crate::run::SeedReport;
use crate::{SimConfig, Simulation};
use conclave_core::{DetRng, Entry, Membership, NodeId, Protocol, Recovered, SnapshotMeta};
use std::fmt::Debug;

pub mod raft;

#[cfg(feature = "paxos")]
pub mod paxos;

#[cfg(feature = "totem")]
pub mod totem;

#[cfg(feature = "gossip")]
pub mod gossip;

/// A protocol the simulator can run.
pub trait SimProtocol: Protocol + Sized {
    /// The name used on the command line (`--protocol`).
    const NAME: &'static str;

    /// The bugs that can be planted (`--plant`), in kebab-case.
    const PLANTS: &'static [&'static str];

    /// Whether every replica applies one shared sequence of entries (Raft, Paxos, Totem). When
    /// false (gossip: each replica applies writes in its own order, so index `i` names unrelated
    /// entries on two replicas), state machine safety only checks that each replica applies its
    /// own indexes one after another, and convergence compares what the replicas' stores hold
    /// (keys and values) instead of applied indexes and snapshot bytes.
    const SHARED_LOG: bool = true;

    /// Whether the replicas agree on what they hold beyond their stores' contents. Asked, with
    /// the stores' contents, before a run with `SHARED_LOG = false` counts as converged: a
    /// store can lag its replica's protocol state (gossip holding writes for a write quorum).
    fn replicas_agree(_cluster: &Cluster<'_, Self>) -> bool {
        true
    }

    /// The cluster-wide configuration: drawn once per seed and shared by every replica.
    type Config: Clone + Debug;

    /// This protocol's invariants, observed after every event.
    type Checker: Checker<Self> + Default;

    /// Draws the configuration for one run. Varying it per seed (batch sizes, optional
    /// features) lets the seeds cover more of the protocol. `plant` is one of
    /// [`SimProtocol::PLANTS`] or `None`.
    fn config(rng: &mut DetRng, plant: Option<&str>) -> Self::Config;

    /// How often the simulator ticks every replica, before clock drift.
    fn tick_interval_ms(config: &Self::Config) -> u64;

    /// Builds (or rebuilds, after a crash) a replica from what its storage recovered. `seed`
    /// differs per replica and per restart. An `Err` (the protocol refuses what storage
    /// recovered) is reported as a violation.
    fn build(
        id: NodeId,
        membership: &Membership,
        config: &Self::Config,
        recovered: Recovered,
        seed: u64,
    ) -> Result<Self, String>;
}

/// A protocol's invariant checker.
///
/// [`Checker::observe`] runs after every event a replica handled, once its `Ready` was carried
/// out; an `Err` describes the violation (it ends the run and is reported with the seed).
/// Checkers keep whatever history they need (every leader per term, every committed entry):
/// that is what lets them check properties such as "every committed entry is in every later
/// leader's log" incrementally instead of comparing whole logs after every event.
pub trait Checker<P: SimProtocol> {
    fn observe(&mut self, event: &Observation<'_, P>) -> Result<(), String>;

    /// Runs once at the end of the run, over every replica (all up by then).
    fn finish(&mut self, _cluster: &Cluster<'_, P>) -> Result<(), String> {
        Ok(())
    }
}

/// What one replica just did, as a checker sees it.
#[derive(Debug)]
pub struct Observation<'a, P: SimProtocol> {
    pub id: NodeId,
    pub node: &'a P,
    /// Virtual time, in milliseconds.
    pub now_ms: u64,
    /// Entries just made durable; when the first one's index is at or below the previous last
    /// index, they replaced a conflicting suffix.
    pub persisted: &'a [Entry],
    /// A snapshot just installed from a peer.
    pub installed: Option<&'a SnapshotMeta>,
    /// Entries just applied to the state machine, in index order.
    pub applied: &'a [Entry],
    /// The replica was just rebuilt from its storage after a crash.
    pub restarted: bool,
    /// Every replica, for checks that compare them.
    pub cluster: Cluster<'a, P>,
}

/// A read-only view of all replicas.
#[derive(Debug)]
pub struct Cluster<'a, P: SimProtocol> {
    pub(crate) nodes: &'a [SimNode<P>],
}

impl<P: SimProtocol> Clone for Cluster<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: SimProtocol> Copy for Cluster<'_, P> {}

impl<'a, P: SimProtocol> Cluster<'a, P> {
    /// The replicas that are up, with their ids.
    pub fn live(&self) -> impl Iterator<Item = (NodeId, &'a P)> + 'a {
        self.nodes.iter().filter_map(|n| n.protocol.as_ref().map(|p| (n.id, p)))
    }

    /// How many replicas the cluster has, up or not.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }
}

/// Every protocol this build can simulate.
pub fn names() -> Vec<&'static str> {
    #[allow(unused_mut)] // mutated only when other protocols are compiled in
    let mut names = vec![raft::Adapter::NAME];
    #[cfg(feature = "paxos")]
    names.push(paxos::Adapter::NAME);
    #[cfg(feature = "totem")]
    names.push(totem::Adapter::NAME);
    #[cfg(feature = "gossip")]
    names.push(gossip::Adapter::NAME);
    names
}

/// The bugs `protocol` can plant, or `None` if the protocol is unknown.
pub fn plants(protocol: &str) -> Option<&'static [&'static str]> {
    match protocol {
        raft::Adapter::NAME => Some(raft::Adapter::PLANTS),
        #[cfg(feature = "paxos")]
        paxos::Adapter::NAME => Some(paxos::Adapter::PLANTS),
        #[cfg(feature = "totem")]
        totem::Adapter::NAME => Some(totem::Adapter::PLANTS),
        #[cfg(feature = "gossip")]
        gossip::Adapter::NAME => Some(gossip::Adapter::PLANTS),
        _ => None,
    }
}

/// Runs one seed of `protocol`, or `None` if the protocol is unknown.
pub fn run_seed(protocol: &str, config: &SimConfig, seed: u64) -> Option<SeedReport> {
    match protocol {
        raft::Adapter::NAME => Some(Simulation::<raft::Adapter>::new(config, seed).run()),
        #[cfg(feature = "paxos")]
        paxos::Adapter::NAME => Some(Simulation::<paxos::Adapter>::new(config, seed).run()),
        #[cfg(feature = "totem")]
        totem::Adapter::NAME => Some(Simulation::<totem::Adapter>::new(config, seed).run()),
        #[cfg(feature = "gossip")]
        gossip::Adapter::NAME => Some(Simulation::<gossip::Adapter>::new(config, seed).run()),
        _ => None,
    }
}
