//! Rounds for one write to reach every replica, for 10, 100 and 1,000 replicas.
//!
//! Every replica runs in this process, driven only through `conclave_core::Protocol`: all are
//! ticked in lockstep and messages are delivered at once, so a round is one gossip interval
//! and the count is pure protocol behaviour (no network delay, no loss). After a short warm-up
//! one replica writes one key; the bench counts rounds until every replica holds it, over
//! several seeds, and prints the table the gossip page quotes. Anti-entropy with push-pull
//! exchanges to `fanout` peers should need a number of rounds growing like log N.
//!
//! Run with `cargo bench -p conclave-gossip --bench convergence`.

use conclave_core::proposal::Proposal;
use conclave_core::{Membership, NodeId, Protocol, Recovered, RequestId};
use conclave_gossip::{Gossip, GossipConfig, Message, WireSize};
use conclave_kv::{Command, PutRequest};
use std::collections::VecDeque;
use std::time::Instant;

struct Outcome {
    rounds: u64,
    messages: u64,
    bytes: u64,
}

/// Replicas and the messages between them, delivered at once.
struct Net {
    nodes: Vec<Gossip>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    counting: bool,
    messages: u64,
    bytes: u64,
}

impl Net {
    fn new(n: u64, seed: u64, config: &GossipConfig) -> Self {
        let members = Membership::new((1..=n).map(NodeId));
        let nodes = (1..=n)
            .map(|i| {
                let node_seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i;
                Gossip::new(
                    NodeId(i),
                    members.clone(),
                    config.clone(),
                    Recovered::default(),
                    node_seed,
                )
                .expect("valid config")
            })
            .collect();
        Self { nodes, queue: VecDeque::new(), counting: false, messages: 0, bytes: 0 }
    }

    fn drain(&mut self, i: usize) {
        while self.nodes[i].has_ready() {
            for env in self.nodes[i].ready().messages {
                self.queue.push_back((NodeId(i as u64 + 1), env.to, env.msg));
            }
        }
    }

    /// Ticks every replica once, then delivers until nothing is in flight.
    fn tick(&mut self) {
        for i in 0..self.nodes.len() {
            self.nodes[i].tick();
            self.drain(i);
        }
        while let Some((from, to, msg)) = self.queue.pop_front() {
            if self.counting {
                self.messages += 1;
                self.bytes += msg.wire_size() as u64;
            }
            let i = (to.0 - 1) as usize;
            self.nodes[i].step(from, msg);
            self.drain(i);
        }
    }
}

fn run(n: u64, seed: u64, config: &GossipConfig) -> Outcome {
    let mut net = Net::new(n, seed, config);
    let ticks_per_round = config.gossip_interval_ms / config.tick_interval_ms;
    // Warm-up: a few rounds so heartbeats have spread, as in a running cluster.
    for _ in 0..5 * ticks_per_round {
        net.tick();
    }
    let command = Command::Put(PutRequest::new("key", "value")).encode();
    let data = Proposal { origin: NodeId(1), request: RequestId(1), command }.encode();
    net.nodes[0].propose(RequestId(1), data);
    net.drain(0);
    net.counting = true;
    let mut ticks = 0;
    while !net.nodes.iter().all(|g| g.value(b"key").is_some()) {
        net.tick();
        ticks += 1;
        assert!(ticks < 1_000 * ticks_per_round, "no convergence for {n} replicas");
    }
    Outcome { rounds: ticks.div_ceil(ticks_per_round), messages: net.messages, bytes: net.bytes }
}

fn main() {
    let config = GossipConfig::default();
    println!(
        "one write reaching every replica (fanout {}, gossip every {} ms, lockstep rounds)",
        config.fanout, config.gossip_interval_ms
    );
    println!();
    println!(
        "| replicas | seeds | rounds mean | min | max | log2 N | msgs per replica per round | bytes per replica per round | wall time |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (n, seeds) in [(10u64, 20u64), (100, 20), (1_000, 3)] {
        let started = Instant::now();
        let outcomes: Vec<Outcome> = (0..seeds).map(|s| run(n, s, &config)).collect();
        let rounds: Vec<u64> = outcomes.iter().map(|o| o.rounds).collect();
        let mean = rounds.iter().sum::<u64>() as f64 / seeds as f64;
        let total_rounds: u64 = rounds.iter().sum();
        let messages: u64 = outcomes.iter().map(|o| o.messages).sum();
        let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
        let per_replica_round = messages as f64 / (n * total_rounds) as f64;
        let bytes_per_replica_round = bytes as f64 / (n * total_rounds) as f64;
        println!(
            "| {n} | {seeds} | {mean:.1} | {} | {} | {:.1} | {per_replica_round:.1} | {bytes_per_replica_round:.0} | {:.1} s |",
            rounds.iter().min().unwrap(),
            rounds.iter().max().unwrap(),
            (n as f64).log2(),
            started.elapsed().as_secs_f64(),
        );
    }
}
