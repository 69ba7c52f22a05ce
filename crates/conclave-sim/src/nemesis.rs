//! The fault injector. Each seed draws a [`FaultPlan`]: how links misbehave (delay, loss,
//! duplication, slow paths) and which kinds of fault strike, at random intervals, during the
//! fault period:
//!
//! - `partitions`: the nodes split in two, both ways;
//! - `isolate_leader`: the leader is cut off from its peers while clients still reach it (what
//!   makes a deposed leader's stale reads observable, thesis §6.4);
//! - `one_way`: some directed links carry nothing while the reverse ones work;
//! - `crashes`: a node (often the leader) loses power and restarts later from what it synced;
//! - `torn_writes`: a node loses power after writing a `Ready` but before syncing it, so that
//!   the write may be lost and none of its messages leave;
//! - `leader_churn`: bursts in which each new leader crashes moments after it is elected, its
//!   first appends only partly delivered, then returns — elections in quick succession, the
//!   shape of Raft's Figure 8 (§5.4.2).
//!
//! At most a minority of nodes is down at once. When the fault period ends, partitions heal,
//! links stop losing messages and every node restarts.

use crate::Simulation;
use crate::events::Event;
use crate::network::LinkFaults;
use crate::node::TornWrite;
use crate::protocols::SimProtocol;
use crate::simulation::Phase;
use conclave_core::{DetRng, Role};

/// The faults one seed injects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    pub links: LinkFaults,
    pub partitions: bool,
    pub isolate_leader: bool,
    pub one_way: bool,
    pub crashes: bool,
    pub torn_writes: bool,
    pub leader_churn: bool,
    /// Time between two faults.
    pub interval_ms_min: u64,
    pub interval_ms_max: u64,
}

/// The kinds of fault, in the order the plan lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Partition,
    IsolateLeader,
    OneWay,
    Crash,
    TornWrite,
    LeaderChurn,
}

/// Counts of the faults injected, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NemesisStats {
    pub partitions: u64,
    pub crashes: u64,
    pub torn_writes: u64,
}

impl FaultPlan {
    /// Draws a plan: every kind of fault with even odds, and at least one.
    pub fn draw(rng: &mut DetRng) -> Self {
        let delay_us_min = rng.range_inclusive(200, 2_000);
        let links = LinkFaults {
            delay_us_min,
            delay_us_max: delay_us_min + rng.range_inclusive(500, 15_000),
            drop_permille: if rng.chance(0.4) { 0 } else { rng.range_inclusive(1, 50) },
            duplicate_permille: if rng.chance(0.5) { 0 } else { rng.range_inclusive(1, 30) },
            slow_permille: if rng.chance(0.5) { 0 } else { rng.range_inclusive(1, 20) },
        };
        let mut kinds = [false; 6];
        for kind in &mut kinds {
            *kind = rng.chance(0.5);
        }
        if !kinds.contains(&true) {
            kinds[rng.below(6) as usize] = true;
        }
        let interval_ms_min = rng.range_inclusive(100, 500);
        Self {
            links,
            partitions: kinds[0],
            isolate_leader: kinds[1],
            one_way: kinds[2],
            crashes: kinds[3],
            torn_writes: kinds[4],
            leader_churn: kinds[5],
            interval_ms_min,
            interval_ms_max: interval_ms_min + rng.range_inclusive(200, 1_500),
        }
    }

    /// The same plan with every fault off: delays stay, nothing is lost, nobody crashes.
    pub fn healthy(self) -> Self {
        Self {
            links: LinkFaults {
                drop_permille: 0,
                duplicate_permille: 0,
                slow_permille: 0,
                ..self.links
            },
            partitions: false,
            isolate_leader: false,
            one_way: false,
            crashes: false,
            torn_writes: false,
            leader_churn: false,
            ..self
        }
    }

    fn kinds(&self) -> Vec<Kind> {
        let flags = [
            (self.partitions, Kind::Partition),
            (self.isolate_leader, Kind::IsolateLeader),
            (self.one_way, Kind::OneWay),
            (self.crashes, Kind::Crash),
            (self.torn_writes, Kind::TornWrite),
            (self.leader_churn, Kind::LeaderChurn),
        ];
        flags.iter().filter(|(on, _)| *on).map(|(_, kind)| *kind).collect()
    }

    /// One line: `delay 0.5-7.9 ms, drop 1.2%, dup 0.4%, slow 0.3%; partitions crashes`.
    pub fn describe(&self) -> String {
        let l = &self.links;
        let kinds: Vec<&str> = [
            (self.partitions, "partitions"),
            (self.isolate_leader, "isolate-leader"),
            (self.one_way, "one-way"),
            (self.crashes, "crashes"),
            (self.torn_writes, "torn-writes"),
            (self.leader_churn, "leader-churn"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        let kinds = if kinds.is_empty() { vec!["no faults"] } else { kinds };
        format!(
            "delay {:.1}-{:.1} ms, drop {:.1}%, dup {:.1}%, slow {:.1}%; {}",
            l.delay_us_min as f64 / 1_000.0,
            l.delay_us_max as f64 / 1_000.0,
            l.drop_permille as f64 / 10.0,
            l.duplicate_permille as f64 / 10.0,
            l.slow_permille as f64 / 10.0,
            kinds.join(" ")
        )
    }
}

impl<P: SimProtocol> Simulation<P> {
    /// The node that leads in the highest term, among those up.
    pub(crate) fn current_leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.protocol.as_ref().map(|p| (i, p.status())))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.term)
            .map(|(i, _)| i)
    }

    fn down_or_doomed(&self) -> usize {
        self.nodes.iter().filter(|n| !n.is_up() || n.torn_write == Some(TornWrite::Next)).count()
    }

    /// A node to hurt: the leader half the time, else any node that is up.
    fn victim(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].is_up()).collect();
        if up.is_empty() {
            return None;
        }
        if self.rngs.nemesis.chance(0.5)
            && let Some(leader) = self.current_leader()
        {
            return Some(leader);
        }
        Some(up[self.rngs.nemesis.below(up.len() as u64) as usize])
    }

    fn after_ms(&mut self, low: u64, high: u64) -> u64 {
        self.now_us + self.rngs.nemesis.range_inclusive(low * 1_000, high * 1_000)
    }

    pub(crate) fn nemesis(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let kinds = self.setup.faults.kinds();
        // Churn needs bursts in a row to line up Figure 8, so when it is on it gets half the
        // turns.
        let kind = if self.setup.faults.leader_churn && self.rngs.nemesis.chance(0.5) {
            Kind::LeaderChurn
        } else {
            kinds[self.rngs.nemesis.below(kinds.len() as u64) as usize]
        };
        let nodes = self.nodes.len();
        let may_take_down = self.down_or_doomed() < (nodes - 1) / 2;
        let mut next =
            self.after_ms(self.setup.faults.interval_ms_min, self.setup.faults.interval_ms_max);
        match kind {
            Kind::Partition if nodes > 1 => {
                let mut order: Vec<usize> = (0..nodes).collect();
                for i in (1..nodes).rev() {
                    order.swap(i, self.rngs.nemesis.below(i as u64 + 1) as usize);
                }
                let side = 1 + self.rngs.nemesis.below((nodes / 2) as u64) as usize;
                let partition = self.network.split(&order[..side], nodes);
                self.partitioned(partition, 200, 3_000);
            }
            Kind::IsolateLeader if nodes > 1 => {
                let leader = match self.current_leader() {
                    Some(leader) => leader,
                    None => self.rngs.nemesis.below(nodes as u64) as usize,
                };
                let partition = self.network.split(&[leader], nodes);
                self.partitioned(partition, 500, 4_000);
            }
            Kind::OneWay if nodes > 1 => {
                let a = self.rngs.nemesis.below(nodes as u64) as usize;
                let others = (0..nodes).filter(|&b| b != a);
                let links: Vec<(usize, usize)> = match self.rngs.nemesis.below(3) {
                    0 => others.map(|b| (a, b)).collect(),
                    1 => others.map(|b| (b, a)).collect(),
                    _ => {
                        let b =
                            (a + 1 + self.rngs.nemesis.below(nodes as u64 - 1) as usize) % nodes;
                        vec![(a, b)]
                    }
                };
                let partition = self.network.cut_one_way(&links);
                self.partitioned(partition, 300, 3_000);
            }
            Kind::Crash if may_take_down => {
                if let Some(node) = self.victim() {
                    self.crash(node, 0);
                    let back = self.after_ms(100, 3_000);
                    self.agenda.schedule(back, Event::Restart { node });
                }
            }
            Kind::TornWrite if may_take_down => {
                if let Some(node) = self.victim() {
                    self.nodes[node].torn_write = Some(TornWrite::Next);
                    if self.config.verbose {
                        self.trace(&format!("n{} will crash before its next sync", node + 1));
                    }
                }
            }
            Kind::LeaderChurn => {
                // A burst in which every new leader dies moments after its election, some of
                // them at their very first write (so their first entries stay on their disk).
                let burst = self.after_ms(1_000, 3_000);
                self.churn_until_us = burst;
                for node in 0..nodes {
                    self.arm_churn(node);
                }
                if self.config.verbose {
                    self.trace("leader churn begins");
                }
                next = burst + self.rngs.nemesis.range_inclusive(500_000, 2_000_000);
            }
            _ => {}
        }
        self.agenda.schedule(next, Event::Nemesis);
    }

    /// During a churn burst, `node` may die at one of its first writes as a leader.
    pub(crate) fn arm_churn(&mut self, node: usize) {
        if self.phase == Phase::Faults
            && self.now_us < self.churn_until_us
            && self.nodes[node].is_up()
            && self.nodes[node].torn_write.is_none()
            && self.rngs.nemesis.chance(0.5)
        {
            let writes = self.rngs.nemesis.range_inclusive(1, 3) as u8;
            self.nodes[node].torn_write = Some(TornWrite::AsLeader(writes));
        }
    }

    /// `node` just became leader. During a churn burst it is cut off moments later, its first
    /// appends partly delivered (a partition also eats what is in flight): half the time by a
    /// crash, after which it soon comes back, half the time by a partition.
    pub(crate) fn new_leader(&mut self, node: usize) {
        if self.phase != Phase::Faults
            || self.now_us >= self.churn_until_us
            || self.nodes[node].torn_write.is_some()
        {
            return;
        }
        let incarnation = self.nodes[node].incarnation;
        let at = self.after_ms(1, 60);
        if self.rngs.nemesis.chance(0.5) {
            self.agenda.schedule(at, Event::Isolate { node, incarnation });
        } else if self.down_or_doomed() < (self.nodes.len() - 1) / 2 + 1 {
            self.agenda.schedule(at, Event::Crash { node, incarnation });
            let back = at + self.rngs.nemesis.range_inclusive(20_000, 400_000);
            self.agenda.schedule(back, Event::Restart { node });
        }
    }

    /// Cuts `node` off from every peer, both ways, for a while.
    pub(crate) fn isolate(&mut self, node: usize) {
        let partition = self.network.split(&[node], self.nodes.len());
        self.partitioned(partition, 200, 1_500);
    }

    fn partitioned(&mut self, partition: u64, min_ms: u64, max_ms: u64) {
        self.nemesis_stats.partitions += 1;
        if self.config.verbose {
            self.trace(&format!("partition: {}", self.network.describe_partition()));
        }
        let heal = self.after_ms(min_ms, max_ms);
        self.agenda.schedule(heal, Event::Heal { partition });
    }

    pub(crate) fn heal(&mut self, partition: u64) {
        if self.network.partition == partition && self.phase == Phase::Faults {
            self.network.heal();
            if self.config.verbose {
                self.trace("partition healed");
            }
        }
    }

    /// The fault period is over: heal, calm the links, bring every node back, stop clients.
    pub(crate) fn faults_end(&mut self) {
        self.phase = Phase::Quiet;
        self.network.heal();
        self.network.calm();
        self.stop_clients();
        for node in 0..self.nodes.len() {
            self.nodes[node].torn_write = None;
            self.restart(node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_fault_appears_across_seeds() {
        let mut seen = [false; 6];
        for seed in 0..64 {
            let plan = FaultPlan::draw(&mut DetRng::new(seed));
            assert!(!plan.kinds().is_empty());
            for kind in plan.kinds() {
                seen[kind as usize] = true;
            }
            assert!(plan.links.delay_us_min <= plan.links.delay_us_max);
        }
        assert_eq!(seen, [true; 6]);
    }
}
