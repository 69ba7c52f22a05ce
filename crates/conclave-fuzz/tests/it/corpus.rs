//! The committed corpus is current: every seed is accepted by its target's check, and the
//! scenario logs recover to exactly the state their scripts end in. When a format changes,
//! these fail first; regenerate with `cargo run -p conclave-fuzz --bin conclave-fuzz-corpus`.

use conclave_fuzz::corpus;
use conclave_fuzz::runner::{CheckResult, Input, Verdict};
use conclave_fuzz::targets::{config, etcd, kv, peer, wal};

const REGENERATE: &str = "regenerate with `cargo run -p conclave-fuzz --bin conclave-fuzz-corpus`";

/// Every seed is accepted — except the inputs of fixed bugs (named `refused-…`), which must
/// be refused.
fn all_accepted(target: &str, mut check: impl FnMut(&[u8]) -> CheckResult) {
    let seeds = corpus::load(target);
    for seed in &seeds {
        let expected = if seed.name.starts_with(conclave_fuzz::seeds::kv::REFUSED) {
            Verdict::Rejected
        } else {
            Verdict::Accepted
        };
        assert_eq!(
            check(&seed.bytes),
            Ok(expected),
            "{target} seed {} is no longer valid; {REGENERATE}",
            seed.name
        );
    }
}

/// The protocols' message types change while they are being built (a variant removed shifts
/// every later one), so a few stale seeds only earn a note; the fuzz target still mutates them.
/// Most of them must decode, or the target would be feeding noise.
fn mostly_accepted(target: &str, check: impl Fn(&[u8]) -> CheckResult) {
    let seeds = corpus::load(target);
    let stale: Vec<&str> = seeds
        .iter()
        .filter(|s| check(&s.bytes) != Ok(Verdict::Accepted))
        .map(|s| s.name.as_str())
        .collect();
    if !stale.is_empty() {
        println!(
            "{target}: {} of {} seeds no longer decode ({}); {REGENERATE}",
            stale.len(),
            seeds.len(),
            stale.join(", ")
        );
    }
    assert!(
        stale.len() * 2 <= seeds.len(),
        "{target}: {} of {} seeds no longer decode; {REGENERATE}",
        stale.len(),
        seeds.len()
    );
}

#[test]
fn peer_message_seeds_decode() {
    mostly_accepted(peer::RAFT, peer::check::<conclave_raft::RaftMessage>);
    mostly_accepted(peer::PAXOS, peer::check::<conclave_paxos::Message>);
    mostly_accepted(peer::TOTEM, peer::check::<conclave_totem::TotemMessage>);
    mostly_accepted(peer::GOSSIP, peer::check::<conclave_gossip::Message>);
}

#[test]
fn kv_seeds_decode() {
    let mut store = conclave_kv::KvStore::new();
    let mut index = 0;
    all_accepted(kv::COMMAND, |bytes| {
        index += 1;
        kv::check_command(&mut store, index, bytes)
    });
    all_accepted(kv::OUTPUT, kv::check_output);
    all_accepted(kv::SNAPSHOT, kv::check_snapshot);
}

#[test]
fn etcd_seeds_are_served() {
    let world = etcd::EtcdWorld::new().unwrap();
    all_accepted(etcd::TARGET, |bytes| world.check(bytes));
}

#[test]
fn config_seeds_load() {
    // The loader reads CONCLAVE_* variables; under a test runner that set some, the config
    // target's own test (in a clean child process) covers this.
    if !config::conclave_variables().is_empty() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seeds = corpus::load(config::TARGET);
    for seed in &seeds {
        assert_eq!(config::check(dir.path(), &seed.bytes), Ok(Verdict::Accepted), "{}", seed.name);
    }
}

#[test]
fn wal_scenarios_recover_whole() {
    let seeds = corpus::load(wal::TARGET);
    let world = wal::WalWorld::new(&seeds);
    for (scenario, want, got) in world.recover_intact() {
        assert_eq!(
            got.as_ref(),
            Ok(&want),
            "scenario {scenario} does not recover as scripted; {REGENERATE}"
        );
    }
    // And each intact file passes the fuzz check as it is.
    for (origin, seed) in seeds.iter().enumerate() {
        let input = Input { origin, bytes: seed.bytes.clone() };
        assert_eq!(world.check(&input), Ok(Verdict::Accepted), "{}", seed.name);
    }
}

/// Reference: Raft §5.3 — a conflicting suffix is replaced; the history lists both versions.
#[test]
fn wal_history_holds_every_record_boundary() {
    let scenario = conclave_fuzz::seeds::wal::scenarios().remove(0);
    let history = wal::history(&scenario);
    let last = history.last().unwrap();
    assert_eq!(last.entries.iter().map(|e| e.index).max(), Some(14));
    assert!(last.entries.iter().filter(|e| e.index >= 10).all(|e| e.term == 2));
    assert!(
        history.iter().any(|s| s.entries.iter().any(|e| e.index == 12 && e.term == 1)),
        "the overwritten suffix was once the log"
    );
}
