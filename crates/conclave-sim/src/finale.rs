//! The end of a run: once the faults stopped and the cluster had a quiet period, a final write
//! must succeed (liveness), every replica must then reach the same state (convergence), and
//! the whole client history must be linearizable when the protocol promises it.

use crate::events::Event;
use crate::linearizability::{self, History, Verdict};
use crate::protocols::{Checker, Cluster, SimProtocol};
use crate::run::{RunStats, SeedReport};
use crate::simulation::Phase;
use crate::{Simulation, Violation};
use conclave_core::StateMachine;

/// How often the end phase looks at the cluster.
const POLL_US: u64 = 100_000;

impl<P: SimProtocol> Simulation<P> {
    pub(crate) fn final_write(&mut self) {
        self.phase = Phase::Final;
        self.final_write_us = self.now_us;
        let client = self.config.clients;
        self.clients[client].stopped = false;
        self.client_ready(client);
        self.agenda.schedule(self.now_us + POLL_US, Event::ConvergenceCheck);
    }

    pub(crate) fn convergence_check(&mut self) {
        let client = self.config.clients;
        let timeout_us = self.config.liveness_timeout_ms * 1_000;
        if !self.clients[client].succeeded {
            if self.now_us >= self.final_write_us + timeout_us {
                let detail = format!(
                    "no write succeeded within {} ms after the faults stopped and a quiet period of {} ms; {}",
                    self.config.liveness_timeout_ms,
                    self.config.quiet_period_ms,
                    self.describe_nodes()
                );
                return self.fail(Violation::new(self.now_us, "liveness", detail));
            }
            return self.agenda.schedule(self.now_us + POLL_US, Event::ConvergenceCheck);
        }
        let succeeded_us = *self.final_ok_us.get_or_insert(self.now_us);
        if self.converged_now() {
            self.converged = true;
            self.phase = Phase::Done;
            return;
        }
        if self.now_us >= succeeded_us + timeout_us {
            let detail = format!(
                "replicas still differ {} ms after the final write: {}",
                self.config.liveness_timeout_ms,
                self.describe_nodes()
            );
            return self.fail(Violation::new(self.now_us, "convergence", detail));
        }
        self.agenda.schedule(self.now_us + POLL_US, Event::ConvergenceCheck);
    }

    /// Every replica up, at the same applied index, with identical state.
    fn converged_now(&self) -> bool {
        let Some(first) = self.nodes.first() else { return true };
        if !P::SHARED_LOG {
            // Revisions are each replica's own: compare what the keys hold.
            let contents = |kv: &conclave_kv::KvStore| {
                let every_key = conclave_kv::RangeRequest::range(vec![0u8], vec![0u8]);
                kv.range(&every_key)
                    .map(|r| r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect::<Vec<_>>())
            };
            let state = contents(&first.kv);
            return self.nodes.iter().all(|n| n.is_up() && contents(&n.kv) == state)
                && P::replicas_agree(&Cluster { nodes: &self.nodes });
        }
        if self.nodes.iter().any(|n| !n.is_up() || n.applied != first.applied) {
            return false;
        }
        let state = first.kv.snapshot();
        self.nodes[1..].iter().all(|n| n.kv.snapshot() == state)
    }

    fn describe_nodes(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.protocol {
                Some(p) => {
                    let s = p.status();
                    format!(
                        "n{} {} term {} commit {} applied {}",
                        n.id,
                        s.role.as_str(),
                        s.term,
                        s.commit_index,
                        n.applied
                    )
                }
                None => format!("n{} down", n.id),
            })
            .collect();
        nodes.join("; ")
    }

    /// The verdict: the first violation, or the end-of-run checks.
    pub(crate) fn conclude(mut self) -> SeedReport {
        if self.violation.is_none() && self.converged {
            let cluster = Cluster { nodes: &self.nodes };
            if let Err(detail) = self.checker.finish(&cluster) {
                let check = format!("{} invariant", P::NAME);
                self.violation = Some(Violation::new(self.now_us, check, detail));
            }
        }
        let g = self.guarantees;
        if self.violation.is_none()
            && g.linearizable_writes
            && g.linearizable_reads
            && g.atomic_compare_and_swap
        {
            let history = History { initial: Default::default(), operations: self.history.clone() };
            let verdict = linearizability::check(&history);
            let detail = match verdict {
                Ok(Verdict::Linearizable) => None,
                Ok(Verdict::NotLinearizable(violation)) => Some(violation.to_string()),
                Ok(Verdict::Inconclusive { key, configurations }) => Some(format!(
                    "the check of key {key} gave up after {configurations} configurations"
                )),
                Err(error) => Some(format!("the simulator recorded a malformed history: {error}")),
            };
            if let Some(detail) = detail {
                self.violation = Some(Violation::new(self.now_us, "linearizability", detail));
            }
        }
        for op in &self.history {
            self.fingerprint = (self.fingerprint
                ^ op.invoked_at
                ^ op.completed_at.unwrap_or(u64::MAX).rotate_left(32))
            .wrapping_mul(0x0100_0000_01B3);
        }
        for n in &self.nodes {
            self.fingerprint = (self.fingerprint ^ n.applied).wrapping_mul(0x0100_0000_01B3);
        }
        SeedReport {
            seed: self.seed,
            protocol: P::NAME,
            nodes: self.nodes.len(),
            faults: self.setup.faults.describe(),
            protocol_config: format!("{:?}", self.setup.protocol),
            violation: self.violation,
            stats: RunStats {
                virtual_ms: self.now_us / 1_000,
                events: self.clock,
                clients: self.client_stats,
                network: self.network.stats,
                nemesis: self.nemesis_stats,
                max_applied: self.nodes.iter().map(|n| n.applied).max().unwrap_or(0),
                snapshots_taken: self.snapshots_taken,
                snapshots_installed: self.snapshots_installed,
            },
            fingerprint: self.fingerprint,
            history: self.history,
        }
    }
}
