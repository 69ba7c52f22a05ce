//! Simulated clients: each issues one operation at a time (put, linearizable get,
//! compare-and-swap on a small key space, with values unique across the run) to the leader it
//! last heard of or to a random replica, and records what it saw for the linearizability
//! checker.
//!
//! A refusal (`NotLeader`, `Unavailable`) means the operation did not take effect, so it is left
//! out of the history. No answer within the client timeout means it may have: the operation is
//! recorded with no completion, and the client moves on.

use crate::linearizability::{Call, Operation, Output};
use crate::protocols::SimProtocol;
use crate::{Simulation, Violation};
use conclave_core::{ConsensusError, DetRng};
use std::collections::BTreeMap;

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    Put { value: String },
    Get,
    Cas { expected: Option<String>, new: String },
}

/// A request as it travels to a replica.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub client: usize,
    pub op: u64,
    pub key: String,
    pub kind: OpKind,
}

/// A replica's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    Put,
    Get(Option<String>),
    Cas(bool),
    Refused(ConsensusError),
    /// The state machine refused or garbled the command: never expected in a correct run.
    Failed(String),
}

/// The operation a client is waiting on.
#[derive(Clone, Debug)]
struct InFlight {
    op: u64,
    node: usize,
    key: String,
    kind: OpKind,
    invoked_at: u64,
}

/// One client.
#[derive(Debug)]
pub(crate) struct Client {
    id: usize,
    /// The replica it believes leads.
    leader_hint: Option<usize>,
    current: Option<InFlight>,
    /// The last value it saw per key, used as the expected value of its compare-and-swaps.
    seen: BTreeMap<String, Option<String>>,
    values: u64,
    /// The final client only writes, and stops after its first success.
    pub(crate) is_final: bool,
    pub(crate) succeeded: bool,
    pub(crate) stopped: bool,
}

/// Counts of what clients saw, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub completed: u64,
    pub refused: u64,
    pub timed_out: u64,
}

impl Client {
    pub(crate) fn new(id: usize, is_final: bool) -> Self {
        Self {
            id,
            leader_hint: None,
            current: None,
            seen: BTreeMap::new(),
            values: 0,
            is_final,
            succeeded: false,
            stopped: is_final,
        }
    }

    fn choose(&mut self, rng: &mut DetRng, keys: usize, cas: bool) -> (String, OpKind) {
        if self.is_final {
            self.values += 1;
            return ("final".into(), OpKind::Put { value: format!("final-{}", self.values) });
        }
        let key = format!("k{}", rng.below(keys as u64));
        let roll = rng.below(100);
        let kind = if roll < 40 {
            OpKind::Get
        } else if roll < 75 || !cas {
            self.values += 1;
            OpKind::Put { value: format!("c{}v{}", self.id, self.values) }
        } else {
            self.values += 1;
            let expected = self.seen.get(&key).cloned().flatten();
            OpKind::Cas { expected, new: format!("c{}v{}", self.id, self.values) }
        };
        (key, kind)
    }

    fn target(&self, rng: &mut DetRng, nodes: usize) -> usize {
        match self.leader_hint {
            Some(leader) if rng.chance(0.8) => leader,
            _ => rng.below(nodes as u64) as usize,
        }
    }
}

impl<P: SimProtocol> Simulation<P> {
    /// Delay of a client link, one way.
    fn client_link_us(&mut self) -> u64 {
        self.rngs.clients.range_inclusive(500, 3_000)
    }

    /// The client is free: issue its next operation.
    pub(crate) fn client_ready(&mut self, client: usize) {
        let c = &mut self.clients[client];
        if c.stopped || c.current.is_some() {
            return;
        }
        let cas = self.guarantees.atomic_compare_and_swap;
        let (key, kind) = c.choose(&mut self.rngs.clients, self.config.keys, cas);
        let node = c.target(&mut self.rngs.clients, self.nodes.len());
        self.next_op += 1;
        let op = self.next_op;
        let invoked_at = self.clock;
        self.clients[client].current =
            Some(InFlight { op, node, key: key.clone(), kind: kind.clone(), invoked_at });
        let request = Request { client, op, key, kind };
        let arrive = self.now_us + self.client_link_us();
        self.agenda.schedule(arrive, crate::events::Event::Request { node, request });
        let timeout = self.now_us + self.config.client_timeout_ms * 1_000;
        self.agenda.schedule(timeout, crate::events::Event::ClientTimeout { client, op });
    }

    /// A replica answers: the reply reaches the client after the link delay.
    pub(crate) fn send_reply(&mut self, client: usize, op: u64, reply: Reply) {
        let at = self.now_us + self.client_link_us();
        self.agenda.schedule(at, crate::events::Event::Reply { client, op, reply });
    }

    pub(crate) fn client_reply(&mut self, client: usize, op: u64, reply: Reply) {
        let Some(flight) = self.clients[client].current.take_if(|f| f.op == op) else {
            return; // the client gave up on this operation already
        };
        if self.config.verbose {
            let line = format!(
                "c{client} op {op} {:?} on {} at n{} -> {reply:?}",
                flight.kind,
                flight.key,
                flight.node + 1
            );
            self.trace(&line);
        }
        let output = match (&flight.kind, &reply) {
            (OpKind::Put { .. }, Reply::Put) => Output::Put,
            (OpKind::Get, Reply::Get(value)) => Output::Get { value: value.clone() },
            (OpKind::Cas { .. }, Reply::Cas(succeeded)) => Output::Cas { succeeded: *succeeded },
            (_, Reply::Refused(error)) => {
                let c = &mut self.clients[client];
                c.leader_hint = match error {
                    ConsensusError::NotLeader { leader: Some(l) } => Some(l.0 as usize - 1),
                    _ => None,
                };
                if matches!(
                    error,
                    ConsensusError::NotLeader { .. } | ConsensusError::Unavailable(_)
                ) {
                    self.client_stats.refused += 1;
                } else {
                    // Any other error leaves the outcome unknown.
                    self.client_stats.timed_out += 1;
                    self.record(client, &flight, None);
                }
                return self.schedule_ready(client);
            }
            (_, Reply::Failed(why)) => {
                let detail = format!("client c{client} op {op} on n{}: {why}", flight.node + 1);
                return self.fail(Violation::new(self.now_us, "state machine output", detail));
            }
            (kind, reply) => {
                let detail = format!("reply {reply:?} does not answer {kind:?}");
                return self.fail(Violation::new(self.now_us, "client protocol", detail));
            }
        };
        self.client_stats.completed += 1;
        let c = &mut self.clients[client];
        c.leader_hint = Some(flight.node);
        let seen = match &flight.kind {
            OpKind::Put { value } => Some(Some(value.clone())),
            OpKind::Get => match &output {
                Output::Get { value } => Some(value.clone()),
                _ => None,
            },
            OpKind::Cas { new, .. } => {
                matches!(output, Output::Cas { succeeded: true }).then(|| Some(new.clone()))
            }
        };
        if let Some(value) = seen {
            c.seen.insert(flight.key.clone(), value);
        }
        if c.is_final {
            c.succeeded = true;
            c.stopped = true;
        }
        self.record(client, &flight, Some(output));
        self.schedule_ready(client);
    }

    pub(crate) fn client_timeout(&mut self, client: usize, op: u64) {
        let Some(flight) = self.clients[client].current.take_if(|f| f.op == op) else { return };
        self.client_stats.timed_out += 1;
        self.clients[client].leader_hint = None;
        self.record(client, &flight, None);
        self.schedule_ready(client);
    }

    fn schedule_ready(&mut self, client: usize) {
        let think = self.rngs.clients.range_inclusive(0, self.config.client_think_ms_max * 1_000);
        self.agenda.schedule(self.now_us + think, crate::events::Event::ClientReady { client });
    }

    /// Adds an operation to the history; `output: None` means the outcome is unknown.
    fn record(&mut self, client: usize, flight: &InFlight, output: Option<Output>) {
        let call = match &flight.kind {
            OpKind::Put { value } => Call::Put { value: value.clone() },
            OpKind::Get => Call::Get,
            OpKind::Cas { expected, new } => {
                Call::Cas { expected: expected.clone(), new: new.clone() }
            }
        };
        self.history.push(Operation {
            client: client as u64,
            key: flight.key.clone(),
            call,
            invoked_at: flight.invoked_at,
            completed_at: output.is_some().then_some(self.clock),
            output,
        });
    }

    /// Stops every client from issuing new operations (those in flight still complete).
    pub(crate) fn stop_clients(&mut self) {
        for c in &mut self.clients {
            c.stopped = true;
        }
    }
}
