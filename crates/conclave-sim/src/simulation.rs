//! [`Simulation`]: one seeded run of a cluster, from setup to verdict.
//!
//! Everything is drawn from the seed through separate [`DetRng`] streams (setup, network,
//! clients, nemesis, replica seeds), so that one stream's use never shifts another's, and
//! events run in (virtual time, scheduling order) order: the same seed gives the same run, bit
//! for bit. A run has three phases: faults with clients running, then a quiet period with every
//! node up and the network whole, then the final write (liveness) and a convergence check.

use crate::checker::StateMachineSafety;
use crate::clients::{Client, ClientStats};
use crate::events::{Agenda, Event};
use crate::linearizability::Operation;
use crate::nemesis::{FaultPlan, NemesisStats};
use crate::network::Network;
use crate::node::SimNode;
use crate::protocols::SimProtocol;
use crate::{SimConfig, Violation};
use conclave_core::{DetRng, Guarantees, Membership, NodeId};

/// What a seed drew before the run started.
#[derive(Clone, Debug)]
pub struct Setup<C> {
    pub nodes: usize,
    /// The protocol's cluster-wide configuration.
    pub protocol: C,
    pub faults: FaultPlan,
    /// Per node: tick period scaling, in thousandths (+25 runs 2.5% slow).
    pub drift_permille: Vec<i64>,
    pub snapshot_interval_entries: u64,
}

/// Independent random streams, one per concern.
#[derive(Debug)]
pub(crate) struct Rngs {
    pub clients: DetRng,
    pub nemesis: DetRng,
    pub nodes: DetRng,
}

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Faults,
    Quiet,
    /// The final write is under way, then convergence is awaited.
    Final,
    Done,
}

/// One seeded run of `P`.
#[derive(Debug)]
pub struct Simulation<P: SimProtocol> {
    pub(crate) config: SimConfig,
    pub(crate) seed: u64,
    pub(crate) setup: Setup<P::Config>,
    pub(crate) membership: Membership,
    pub(crate) guarantees: Guarantees,
    pub(crate) nodes: Vec<SimNode<P>>,
    pub(crate) agenda: Agenda<P::Message>,
    pub(crate) now_us: u64,
    /// Events handled so far: the logical clock of the client history.
    pub(crate) clock: u64,
    pub(crate) network: Network,
    pub(crate) clients: Vec<Client>,
    pub(crate) next_op: u64,
    pub(crate) history: Vec<Operation>,
    pub(crate) checker: P::Checker,
    pub(crate) safety: StateMachineSafety,
    pub(crate) violation: Option<Violation>,
    pub(crate) rngs: Rngs,
    pub(crate) phase: Phase,
    pub(crate) client_stats: ClientStats,
    pub(crate) nemesis_stats: NemesisStats,
    /// A hash of every event and of the outcome, to compare runs.
    pub(crate) fingerprint: u64,
    /// Set when the final write succeeded and the replicas agree.
    pub(crate) converged: bool,
    /// When the final write was first issued, and when it first succeeded.
    pub(crate) final_write_us: u64,
    pub(crate) final_ok_us: Option<u64>,
    pub(crate) snapshots_taken: u64,
    pub(crate) snapshots_installed: u64,
    /// Leader churn lasts until then.
    pub(crate) churn_until_us: u64,
}

impl<P: SimProtocol> Simulation<P> {
    /// Draws the setup of `seed` and builds the cluster (all replicas up, nothing scheduled).
    ///
    /// Panics if `config` is invalid or names an unknown planted bug: check both first.
    pub fn new(config: &SimConfig, seed: u64) -> Self {
        config.validate().expect("simulation config must be valid");
        if let Some(plant) = &config.plant {
            assert!(P::PLANTS.contains(&plant.as_str()), "{} has no planted bug {plant}", P::NAME);
        }
        let mut root = DetRng::new(seed);
        let mut setup_rng = root.fork();
        let mut protocol_rng = root.fork();
        let network_rng = root.fork();
        let rngs = Rngs { clients: root.fork(), nemesis: root.fork(), nodes: root.fork() };
        let nodes = config.nodes.unwrap_or(if setup_rng.chance(0.5) { 3 } else { 5 });
        let mut faults = FaultPlan::draw(&mut setup_rng);
        if !config.faults {
            faults = faults.healthy();
        }
        if !config.duplicate_messages {
            faults.links.duplicate_permille = 0;
        }
        let drift = config.max_drift_percent as i64 * 10;
        let drift_permille = (0..nodes)
            .map(|_| setup_rng.range_inclusive(0, 2 * drift as u64) as i64 - drift)
            .collect();
        let snapshot_interval_entries = config
            .snapshot_interval_entries
            .unwrap_or_else(|| [20, 100, 1_000, 100_000][setup_rng.below(4) as usize]);
        let setup = Setup {
            nodes,
            protocol: P::config(&mut protocol_rng, config.plant.as_deref()),
            faults,
            drift_permille,
            snapshot_interval_entries,
        };
        let membership = Membership::new((1..=nodes as u64).map(NodeId));
        let tick_us = P::tick_interval_ms(&setup.protocol) * 1_000;
        let sim_nodes = setup
            .drift_permille
            .iter()
            .enumerate()
            .map(|(i, d)| SimNode::new(i, (tick_us as i64 * (1_000 + d) / 1_000) as u64))
            .collect();
        let mut clients: Vec<Client> = (0..config.clients).map(|c| Client::new(c, false)).collect();
        clients.push(Client::new(config.clients, true));
        let network = Network::new(setup.faults.links.clone(), network_rng);
        let mut sim = Self {
            config: config.clone(),
            seed,
            setup,
            guarantees: Guarantees {
                linearizable_writes: false,
                linearizable_reads: false,
                atomic_compare_and_swap: false,
                has_leader: false,
                fault_tolerance: None,
            },
            membership,
            nodes: sim_nodes,
            agenda: Agenda::new(),
            now_us: 0,
            clock: 0,
            network,
            clients,
            next_op: 0,
            history: Vec::new(),
            checker: P::Checker::default(),
            safety: if P::SHARED_LOG {
                StateMachineSafety::new(nodes)
            } else {
                StateMachineSafety::per_replica(nodes)
            },
            violation: None,
            rngs,
            phase: Phase::Faults,
            client_stats: ClientStats::default(),
            nemesis_stats: NemesisStats::default(),
            fingerprint: 0xCBF2_9CE4_8422_2325,
            converged: false,
            final_write_us: 0,
            final_ok_us: None,
            churn_until_us: 0,
            snapshots_taken: 0,
            snapshots_installed: 0,
        };
        for node in 0..nodes {
            sim.start_node(node, false);
        }
        if let Some(p) = &sim.nodes[0].protocol {
            sim.guarantees = p.guarantees();
        }
        sim
    }

    /// What this seed drew.
    pub fn setup(&self) -> &Setup<P::Config> {
        &self.setup
    }

    /// Runs to the end: a violation, or convergence after the final write.
    pub fn run(mut self) -> crate::run::SeedReport {
        self.schedule_start();
        let end_us = (self.config.fault_period_ms
            + self.config.quiet_period_ms
            + 2 * self.config.liveness_timeout_ms)
            * 1_000;
        while self.violation.is_none() && self.phase != Phase::Done {
            let Some((at, event)) = self.agenda.pop() else { break };
            self.now_us = at;
            self.clock += 1;
            self.mix_event(&event);
            if self.config.verbose {
                self.trace(&event.label());
            }
            self.handle(event);
            if self.now_us > end_us && self.violation.is_none() {
                let detail = "the run did not reach a verdict in time".to_string();
                self.fail(Violation::new(self.now_us, "liveness", detail));
            }
        }
        self.conclude()
    }

    fn schedule_start(&mut self) {
        for client in 0..self.config.clients {
            let at = self.rngs.clients.range_inclusive(0, 20_000);
            self.agenda.schedule(at, Event::ClientReady { client });
        }
        let first = self.rngs.nemesis.range_inclusive(100_000, 600_000);
        if self.config.faults {
            self.agenda.schedule(first, Event::Nemesis);
        }
        let faults_end = self.config.fault_period_ms * 1_000;
        self.agenda.schedule(faults_end, Event::FaultsEnd);
        let final_write = faults_end + self.config.quiet_period_ms * 1_000;
        self.agenda.schedule(final_write, Event::FinalWrite);
    }

    fn handle(&mut self, event: Event<P::Message>) {
        match event {
            Event::Tick { node, incarnation } => self.tick(node, incarnation),
            Event::Deliver { from, to, msg } => self.deliver(from, to, msg),
            Event::Request { node, request } => self.node_request(node, request),
            Event::Reply { client, op, reply } => self.client_reply(client, op, reply),
            Event::ClientTimeout { client, op } => self.client_timeout(client, op),
            Event::ClientReady { client } => self.client_ready(client),
            Event::Nemesis => self.nemesis(),
            Event::Heal { partition } => self.heal(partition),
            Event::Restart { node } => self.restart(node),
            Event::Crash { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation && self.phase == Phase::Faults {
                    self.crash(node, 0);
                }
            }
            Event::Isolate { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation && self.phase == Phase::Faults {
                    self.isolate(node);
                }
            }
            Event::FaultsEnd => self.faults_end(),
            Event::FinalWrite => self.final_write(),
            Event::ConvergenceCheck => self.convergence_check(),
        }
    }

    /// Records the first violation; the run stops after the current event.
    pub(crate) fn fail(&mut self, violation: Violation) {
        if self.config.verbose {
            self.trace(&format!("VIOLATION {violation}"));
        }
        self.violation.get_or_insert(violation);
    }

    pub(crate) fn trace(&self, line: &str) {
        println!("[seed {} {:>10.3} ms] {line}", self.seed, self.now_us as f64 / 1_000.0);
    }

    /// Folds a value into the run's fingerprint (FNV-1a over 64-bit words).
    pub(crate) fn mix(&mut self, value: u64) {
        self.fingerprint = (self.fingerprint ^ value).wrapping_mul(0x0100_0000_01B3);
    }

    fn mix_event(&mut self, event: &Event<P::Message>) {
        self.mix(self.now_us);
        let (kind, a, b) = match event {
            Event::Tick { node, incarnation } => (1, *node as u64, u64::from(*incarnation)),
            Event::Deliver { from, to, .. } => (2, *from as u64, *to as u64),
            Event::Request { node, request } => (3, *node as u64, request.op),
            Event::Reply { client, op, .. } => (4, *client as u64, *op),
            Event::ClientTimeout { client, op } => (5, *client as u64, *op),
            Event::ClientReady { client } => (6, *client as u64, 0),
            Event::Nemesis => (7, 0, 0),
            Event::Heal { partition } => (8, *partition, 0),
            Event::Restart { node } => (9, *node as u64, 0),
            Event::Crash { node, incarnation } => (10, *node as u64, u64::from(*incarnation)),
            Event::Isolate { node, incarnation } => (14, *node as u64, u64::from(*incarnation)),
            Event::FaultsEnd => (11, 0, 0),
            Event::FinalWrite => (12, 0, 0),
            Event::ConvergenceCheck => (13, 0, 0),
        };
        self.mix(kind);
        self.mix(a);
        self.mix(b);
    }
}
