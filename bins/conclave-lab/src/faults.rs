//! Faults on real processes and on the proxied network, on a schedule or at random.
//!
//! A [`FaultPlan`] is fixed before any target runs (from the fault list, the run's duration
//! and the seed), so every target gets the same faults at the same times on the same node
//! positions. What depends on the moment — which node leads — is decided when the fault is
//! injected. Each fault is held for a while and then healed: a killed node is restarted from
//! its data directory, a paused one continued, the network's cuts and shapes removed.

use crate::proxy::LinkShape;
use crate::target::{Target, find_leader};
use conclave_core::DetRng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL a node, restart it at heal.
    Kill,
    /// SIGKILL the leader (a leaderless target: the planned node).
    LeaderKill,
    /// SIGTERM the leader, as a rolling restart does, and wait for it to exit; restart it at
    /// heal. A Raft or etcd leader hands its leadership over before it stops.
    LeaderStop,
    /// SIGSTOP a node, SIGCONT at heal.
    Pause,
    LeaderPause,
    /// Cut a node off from the others, both ways.
    Partition,
    /// A node's messages to the others are lost; theirs still reach it.
    PartitionAsym,
    IsolateLeader,
    /// Cut the cluster into a minority (holding the planned node) and a majority.
    SplitHalves,
    /// Delay every peer link by 50 to 100 ms.
    Delay,
    /// Lose 20% of the chunks on every peer link (each costs a retransmission timeout).
    Drop,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        Self::Kill,
        Self::LeaderKill,
        Self::LeaderStop,
        Self::Pause,
        Self::LeaderPause,
        Self::Partition,
        Self::PartitionAsym,
        Self::IsolateLeader,
        Self::SplitHalves,
        Self::Delay,
        Self::Drop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::LeaderKill => "leader-kill",
            Self::LeaderStop => "leader-stop",
            Self::Pause => "pause",
            Self::LeaderPause => "leader-pause",
            Self::Partition => "partition",
            Self::PartitionAsym => "partition-asym",
            Self::IsolateLeader => "isolate-leader",
            Self::SplitHalves => "split-halves",
            Self::Delay => "delay",
            Self::Drop => "drop",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown fault `{text}`; expected one of {}", names.join(", "))
        })
    }

    /// `leader-kill,partition` or `all` (`none` or empty: no faults).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        match text.trim() {
            "" | "none" => Ok(Vec::new()),
            "all" => Ok(Self::ALL.to_vec()),
            list => list.split(',').map(|k| Self::parse(k.trim())).collect(),
        }
    }

    fn targets_leader(self) -> bool {
        matches!(
            self,
            Self::LeaderKill | Self::LeaderStop | Self::LeaderPause | Self::IsolateLeader
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How faults are placed in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// The listed faults once each, in order, evenly spaced.
    Schedule,
    /// Faults drawn from the list at random times, as many as fit.
    Random,
}

/// One planned fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub kind: FaultKind,
    /// When it is injected, from the start of the workload.
    pub at_ms: u64,
    /// How long it lasts before it is healed.
    pub hold_ms: u64,
    /// The node (0-based) it hits, unless it hits the leader of the moment.
    pub node: usize,
}

/// Plans the faults of one run of `duration_ms`.
pub fn plan(
    kinds: &[FaultKind],
    mode: FaultMode,
    duration_ms: u64,
    hold_ms: u64,
    nodes: usize,
    seed: u64,
) -> Vec<FaultPlan> {
    if kinds.is_empty() || nodes == 0 {
        return Vec::new();
    }
    let mut rng = DetRng::new(seed ^ 0xFA17_5EED);
    // Leave a warm-up before the first fault and a tail after the last heal, so throughput
    // before and recovery after are both on the record.
    let warmup = (duration_ms * 15 / 100).max(1_000).min(duration_ms / 2);
    let tail = (duration_ms * 20 / 100).max(1_500).min(duration_ms / 3);
    let usable = duration_ms.saturating_sub(warmup + tail);
    let mut plans = Vec::new();
    match mode {
        FaultMode::Schedule => {
            let slot = usable / kinds.len() as u64;
            for (i, &kind) in kinds.iter().enumerate() {
                plans.push(FaultPlan {
                    kind,
                    at_ms: warmup + i as u64 * slot,
                    hold_ms: hold_ms.min(slot * 6 / 10).max(1),
                    node: rng.below(nodes as u64) as usize,
                });
            }
        }
        FaultMode::Random => {
            let end = warmup + usable;
            let mut at = warmup + rng.range_inclusive(0, hold_ms / 2);
            loop {
                let hold = rng.range_inclusive(hold_ms / 2, hold_ms * 3 / 2).max(1);
                if at + hold > end {
                    break;
                }
                let kind = kinds[rng.below(kinds.len() as u64) as usize];
                plans.push(FaultPlan {
                    kind,
                    at_ms: at,
                    hold_ms: hold,
                    node: rng.below(nodes as u64) as usize,
                });
                at += hold + rng.range_inclusive(hold_ms / 2, hold_ms * 2);
            }
        }
    }
    plans
}

/// How long a node stopped by `leader-stop` may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A fault as it happened on one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub kind: FaultKind,
    /// The node it hit (0-based), as decided at injection.
    pub node: Option<usize>,
    pub injected_ms: u64,
    pub healed_ms: Option<u64>,
    /// Anything that went wrong injecting or healing it.
    pub note: Option<String>,
}

/// What is in force now, so that it can be healed.
#[derive(Debug, Default)]
struct Active {
    killed: Vec<usize>,
    paused: Vec<usize>,
    network: bool,
}

/// Injects and heals faults on one target.
#[derive(Debug)]
pub struct Injector {
    target: Arc<Mutex<Target>>,
    active: Active,
}

impl Injector {
    pub fn new(target: Arc<Mutex<Target>>) -> Self {
        Self { target, active: Active::default() }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Target) -> T) -> T {
        f(&mut self.target.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Injects `plan`; returns the node hit.
    pub async fn inject(&mut self, plan: &FaultPlan) -> anyhow::Result<Option<usize>> {
        let (endpoints, nodes) = self.with(|t| (t.endpoints(), t.nodes()));
        let node = if plan.kind.targets_leader() {
            find_leader(&endpoints).await.unwrap_or(plan.node % nodes)
        } else {
            plan.node % nodes
        };
        let others: Vec<usize> = (0..nodes).filter(|&j| j != node).collect();
        match plan.kind {
            FaultKind::Kill | FaultKind::LeaderKill => {
                self.with(|t| t.kill(node))?;
                self.active.killed.push(node);
            }
            FaultKind::LeaderStop => {
                self.with(|t| t.terminate(node))?;
                // Restarted at heal, like a killed node, once it has exited.
                self.active.killed.push(node);
                let deadline = tokio::time::Instant::now() + STOP_GRACE;
                while self.with(|t| t.is_running(node)) {
                    if tokio::time::Instant::now() >= deadline {
                        self.with(|t| t.kill(node))?;
                        anyhow::bail!(
                            "node {} did not stop within {STOP_GRACE:?} of SIGTERM; killed",
                            node + 1
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            FaultKind::Pause | FaultKind::LeaderPause => {
                self.with(|t| t.pause(node))?;
                self.active.paused.push(node);
            }
            FaultKind::Partition | FaultKind::IsolateLeader => {
                self.with(|t| t.network.split(&[node], &others));
                self.active.network = true;
            }
            FaultKind::PartitionAsym => {
                self.with(|t| others.iter().for_each(|&j| t.network.cut(node, j)));
                self.active.network = true;
            }
            FaultKind::SplitHalves => {
                let minority: Vec<usize> = (0..nodes / 2).map(|k| (node + k) % nodes).collect();
                let majority: Vec<usize> = (0..nodes).filter(|j| !minority.contains(j)).collect();
                self.with(|t| t.network.split(&minority, &majority));
                self.active.network = true;
            }
            FaultKind::Delay => {
                let shape = LinkShape {
                    delay: Duration::from_millis(50),
                    jitter: Duration::from_millis(50),
                    loss: 0.0,
                };
                self.with(|t| t.network.shape_all(shape));
                self.active.network = true;
            }
            FaultKind::Drop => {
                let shape = LinkShape { loss: 0.2, ..LinkShape::default() };
                self.with(|t| t.network.shape_all(shape));
                self.active.network = true;
            }
        }
        let hits_node = !matches!(plan.kind, FaultKind::Delay | FaultKind::Drop);
        Ok(hits_node.then_some(node))
    }

    /// Heals everything in force: restarts killed nodes, continues paused ones, heals the
    /// network.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        let active = std::mem::take(&mut self.active);
        let mut errors = Vec::new();
        self.with(|t| {
            for node in active.paused {
                if let Err(e) = t.resume(node) {
                    errors.push(format!("resume node {}: {e:#}", node + 1));
                }
            }
            for node in active.killed {
                if let Err(e) = t.restart(node) {
                    errors.push(format!("restart node {}: {e:#}", node + 1));
                }
            }
            if active.network {
                t.network.heal();
            }
        });
        anyhow::ensure!(errors.is_empty(), "{}", errors.join("; "));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_spaces_faults_inside_the_run() {
        let kinds = [FaultKind::LeaderKill, FaultKind::Partition];
        let plans = plan(&kinds, FaultMode::Schedule, 20_000, 4_000, 3, 7);
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].kind, FaultKind::LeaderKill);
        assert!(plans[0].at_ms >= 1_000);
        assert!(plans[0].at_ms + plans[0].hold_ms <= plans[1].at_ms);
        assert!(plans[1].at_ms + plans[1].hold_ms <= 20_000);
        assert_eq!(plans, plan(&kinds, FaultMode::Schedule, 20_000, 4_000, 3, 7));
    }

    #[test]
    fn random_faults_do_not_overlap_and_fit() {
        let plans = plan(&FaultKind::ALL, FaultMode::Random, 60_000, 3_000, 5, 11);
        assert!(plans.len() >= 3, "{plans:?}");
        for pair in plans.windows(2) {
            assert!(pair[0].at_ms + pair[0].hold_ms <= pair[1].at_ms);
        }
        assert!(plans.iter().all(|p| p.at_ms + p.hold_ms <= 60_000 && p.node < 5));
    }

    #[test]
    fn parses_lists() {
        assert_eq!(
            FaultKind::parse_list("leader-kill,partition"),
            Ok(vec![FaultKind::LeaderKill, FaultKind::Partition])
        );
        assert_eq!(FaultKind::parse_list("all").unwrap().len(), 11);
        assert!(FaultKind::parse_list("meteor").is_err());
        assert_eq!(FaultKind::parse_list("none"), Ok(vec![]));
    }
}
