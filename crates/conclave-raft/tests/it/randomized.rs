//! A small seeded fault-injection run: random ticks, delivery order, drops, duplicates,
//! partitions, crashes that lose an unpersisted Ready, snapshots and transfers. Checks Election
//! Safety (on every step), State Machine Safety and Log Matching (§5.2–§5.4), and that the
//! cluster converges once the faults stop.

use crate::network::{Network, config};
use conclave_core::{DetRng, NodeId, Protocol};
use conclave_raft::{PlantedBug, RaftConfig, RaftMessage};

/// Runs one seed and returns the broken invariants it recorded (only a run with a planted bug
/// records any; otherwise the first one panics).
fn run(seed: u64, steps: usize, planted_bug: Option<PlantedBug>) -> Vec<String> {
    // Lease reads assume clocks of nearly equal rates (thesis §6.4.1), so in runs with leases
    // every replica ticks together; otherwise replicas tick one at a time, at random rates.
    let lease_read = seed % 8 == 7;
    let config = RaftConfig {
        snapshot_keep_entries: 3,
        max_entries_per_append: 3,
        max_inflight_appends: 4,
        pre_vote: seed & 1 == 0,
        check_quorum: seed % 4 < 2,
        lease_read,
        planted_bug,
        ..config()
    };
    let mut net = Network::new(5, config);
    net.strict = planted_bug.is_none();
    let mut rng = DetRng::new(seed);
    let pick = |rng: &mut DetRng| rng.range_inclusive(1, 5);
    for _ in 0..steps {
        match rng.below(100) {
            0..=39 => {
                let id = pick(&mut rng);
                // Ticking everyone, a fifth as often, keeps time at the same pace.
                let ids: Vec<u64> = match lease_read {
                    true if rng.below(5) == 0 => (1..=5).collect(),
                    true => Vec::new(),
                    false => vec![id],
                };
                for id in ids {
                    if !net.down.contains(&NodeId(id)) {
                        net.raft_mut(id).tick();
                    }
                }
            }
            40..=79 => {
                for _ in 0..4 {
                    deliver_one(&mut net, &mut rng);
                }
            }
            80..=87 => {
                let id = pick(&mut rng);
                if !net.down.contains(&NodeId(id)) {
                    net.propose(id, &format!("s{seed}-{}", rng.below(1_000_000)));
                }
            }
            88..=89 => {
                let id = pick(&mut rng);
                if !net.down.contains(&NodeId(id)) {
                    net.read(id);
                }
            }
            90 => {
                let (a, b) = (NodeId(pick(&mut rng)), NodeId(pick(&mut rng)));
                net.cut.insert((a, b));
                net.cut.insert((b, a));
            }
            91..=92 => net.heal(),
            93 => {
                // Crash, losing whatever Ready was not yet carried out.
                if net.down.len() < 2 {
                    net.crash(pick(&mut rng));
                }
            }
            94..=95 => {
                let down: Vec<NodeId> = net.down.iter().copied().collect();
                if let Some(id) = down.first() {
                    net.restart(id.0);
                }
            }
            96 => net.take_snapshot(pick(&mut rng)),
            97 => change_membership(&mut net, &mut rng),
            98 => {
                let (from, to) = (pick(&mut rng), pick(&mut rng));
                if !net.down.contains(&NodeId(from)) {
                    let _ = net.raft_mut(from).transfer_leadership(NodeId(to));
                }
            }
            _ => deliver_one(&mut net, &mut rng),
        }
        // Sometimes leave a Ready pending, so that a crash can lose it.
        if rng.chance(0.8) {
            net.process_all();
        }
        net.assert_state_machine_safety();
    }
    // Faults stop: everyone back, links healed, time passes.
    let down: Vec<NodeId> = net.down.iter().copied().collect();
    for id in down {
        net.restart(id.0);
    }
    net.heal();
    net.queue.clear();
    net.tick_all(100);
    if net.leader().is_none() {
        for (id, n) in &net.nodes {
            eprintln!(
                "node {id}: {:?} term {} leader {:?} commit {} last {} (term {:?}) members {:?}",
                n.raft.role(),
                n.raft.term(),
                n.raft.leader(),
                n.raft.commit_index(),
                n.raft.last_index(),
                n.raft.term_at(n.raft.last_index()),
                n.raft.membership().voters
            );
        }
    }
    let leader = net.leader().unwrap_or_else(|| panic!("seed {seed}: no leader after healing"));
    net.propose(leader, "final");
    net.tick_all(5);
    let commit = net.raft(leader).commit_index();
    let voters = net.raft(leader).membership().voters.clone();
    let members = || net.nodes.iter().filter(|(id, _)| voters.contains(id));
    for (id, node) in members() {
        assert_eq!(node.applied_index, commit, "seed {seed}: node {id} did not converge");
        assert_eq!(node.raft.commit_index(), commit);
    }
    // Log Matching (§5.3): after convergence the logs agree wherever both still hold entries.
    let first = members().map(|(_, n)| n.raft.first_index()).max().unwrap();
    for index in first..=commit {
        let terms: Vec<_> = members().map(|(_, n)| n.raft.term_at(index)).collect();
        assert!(terms.windows(2).all(|w| w[0] == w[1]), "seed {seed}: logs differ at {index}");
    }
    net.assert_state_machine_safety();
    if std::env::var("RAFT_STATS").is_ok() {
        let installed: usize = net.nodes.values().map(|n| n.snapshots_restored.len()).sum();
        let reads: usize = net.nodes.values().map(|n| n.reads.len()).sum();
        eprintln!(
            "seed {seed}: leaders {} commit {commit} snapshots installed {installed} reads {reads}",
            net.leaders.len()
        );
    }
    assert!(commit > 5, "seed {seed}: too little progress ({commit})");
    net.violations
}

/// Asks a random replica to add or remove one voter, keeping at least three.
fn change_membership(net: &mut Network, rng: &mut DetRng) {
    let id = rng.range_inclusive(1, 5);
    if net.down.contains(&NodeId(id)) {
        return;
    }
    let mut next = net.raft(id).membership().clone();
    let other = NodeId(rng.range_inclusive(1, 5));
    if !next.voters.remove(&other) {
        next.voters.insert(other);
    }
    if next.voters.len() >= 3 {
        let request = conclave_core::RequestId(1_000_000 + rng.below(1_000_000));
        net.raft_mut(id).propose_membership(request, next);
    }
}

fn deliver_one(net: &mut Network, rng: &mut DetRng) {
    if net.queue.is_empty() {
        return;
    }
    let i = rng.below(net.queue.len() as u64) as usize;
    let (from, to, msg) = net.queue.remove(i).unwrap();
    if rng.chance(0.05) || net.cut.contains(&(from, to)) || net.down.contains(&to) {
        return;
    }
    if rng.chance(0.03) {
        net.queue.push_back((from, to, msg.clone()));
    }
    let msg: RaftMessage = msg;
    net.raft_mut(to.0).step(from, msg);
}

/// `RAFT_SEED=n` replays one seed; `RAFT_SEEDS=n` runs seeds 0..n (8 by default, so the
/// suite stays fast; run more in release mode); `RAFT_STEPS=n` lengthens each run.
#[test]
fn randomized_faults_keep_safety_and_converge() {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds = match var("RAFT_SEED") {
        Some(seed) => seed..seed + 1,
        None => 0..var("RAFT_SEEDS").unwrap_or(8),
    };
    for seed in seeds {
        let replay = format!("RAFT_SEED={seed} cargo test -p conclave-raft --test it randomized");
        let steps = var("RAFT_STEPS").unwrap_or(3000) as usize;
        let outcome = std::panic::catch_unwind(|| run(seed, steps, None));
        assert!(outcome.is_ok(), "seed {seed} failed; replay with: {replay}");
    }
}

// The harness is only worth its seeds if it notices a broken rule: a leader that answers reads
// without confirming its leadership is caught serving a stale read (first by seed 13; the
// range starts near it to keep the suite fast).
#[test]
fn randomized_faults_catch_reads_from_a_deposed_leader() {
    let caught = (10..20).find(|&seed| {
        let violations = run(seed, 3000, Some(PlantedBug::ReadFromDeposedLeader));
        violations.iter().any(|v| v.contains("answered read"))
    });
    assert!(caught.is_some(), "no seed caught the planted bug");
}
