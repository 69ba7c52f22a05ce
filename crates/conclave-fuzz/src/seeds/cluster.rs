//! Real peer messages, recorded from a small in-memory cluster of any protocol.
//!
//! Hand-built messages would only cover what their author thought of. Instead, three replicas
//! of the protocol run here without a network: every message one sends is encoded with
//! postcard (as the driver does), recorded, and stepped into its addressee. Clients propose
//! through every member (so followers forward), ask for linearizable reads, and the members
//! take snapshots; then one member is wiped and rejoins, which draws the catch-up and snapshot
//! messages. The first few messages of each kind become seeds.

use crate::runner::Seed;
use bytes::Bytes;
use conclave_core::proposal::Proposal;
use conclave_core::{EntryKind, StateMachine};
use conclave_core::{Membership, NodeId, Protocol, Recovered, RequestId, Snapshot, SnapshotMeta};
use conclave_kv::{Command, DeleteRangeRequest, KvStore, PutRequest, TxnRequest};
use std::collections::{BTreeMap, VecDeque};

/// How many messages of each kind become seeds.
const PER_KIND: usize = 3;
/// Ticks the cluster runs for.
const TICKS: u64 = 600;

/// Builds replica `id` of the protocol from what it recovered.
pub type Factory<'a, P> = dyn Fn(NodeId, Membership, Recovered) -> P + 'a;

struct Replica<P> {
    protocol: P,
    store: KvStore,
}

/// Runs a three-member cluster and returns the first messages of every kind it sent.
pub fn record<P: Protocol>(make: &Factory<'_, P>) -> Vec<Seed> {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let membership = Membership::new(ids.iter().copied());
    let mut replicas: BTreeMap<NodeId, Replica<P>> = ids
        .iter()
        .map(|&id| {
            let protocol = make(id, membership.clone(), Recovered::default());
            (id, Replica { protocol, store: KvStore::new() })
        })
        .collect();
    let mut kinds: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut wire: VecDeque<(NodeId, NodeId, Vec<u8>)> = VecDeque::new();
    let mut request = 0u64;
    for tick in 0..TICKS {
        for replica in replicas.values_mut() {
            replica.protocol.tick();
        }
        if tick % 20 == 10 {
            // Propose through each member in turn, so followers forward to the leader.
            let origin = ids[(tick / 20) as usize % ids.len()];
            request += 1;
            let data = Proposal { origin, request: RequestId(request), command: command(request) }
                .encode();
            if let Some(replica) = replicas.get_mut(&origin) {
                replica.protocol.propose(RequestId(request), data);
            }
        }
        if tick % 50 == 25 {
            let origin = ids[(tick / 50) as usize % ids.len()];
            request += 1;
            if let Some(replica) = replicas.get_mut(&origin) {
                replica.protocol.read(RequestId(request));
            }
        }
        if tick == TICKS / 2 {
            for replica in replicas.values_mut() {
                take_snapshot(replica, &membership);
            }
            // The third member loses everything and rejoins: catch-up and snapshot transfer.
            let wiped = ids[2];
            let protocol = make(wiped, membership.clone(), Recovered::default());
            replicas.insert(wiped, Replica { protocol, store: KvStore::new() });
        }
        pump(&mut replicas, &mut wire, &mut kinds);
    }
    kinds
        .into_iter()
        .flat_map(|(kind, messages)| {
            messages
                .into_iter()
                .enumerate()
                .map(move |(n, bytes)| Seed { name: format!("{kind}-{n}"), bytes })
        })
        .collect()
}

/// Carries out every replica's effects and delivers messages until the cluster is quiet.
fn pump<P: Protocol>(
    replicas: &mut BTreeMap<NodeId, Replica<P>>,
    wire: &mut VecDeque<(NodeId, NodeId, Vec<u8>)>,
    kinds: &mut BTreeMap<String, Vec<Vec<u8>>>,
) {
    for _ in 0..10_000 {
        for (&id, replica) in replicas.iter_mut() {
            while replica.protocol.has_ready() {
                let ready = replica.protocol.ready();
                if let Some(snapshot) = &ready.snapshot {
                    // A restore failure would be a bug elsewhere; the recorder only needs
                    // messages, so the replica carries on with what it has.
                    let _ = replica.store.restore(&snapshot.meta, &snapshot.data);
                }
                for envelope in ready.messages {
                    let bytes = postcard::to_allocvec(&envelope.msg)
                        .expect("postcard encodes every protocol message");
                    let seen =
                        kinds.entry(kind_of(&replica.protocol, &envelope.msg, &bytes)).or_default();
                    if seen.len() < PER_KIND && !seen.contains(&bytes) {
                        seen.push(bytes.clone());
                    }
                    wire.push_back((id, envelope.to, bytes));
                }
                for entry in ready.committed {
                    let command = match entry.kind {
                        EntryKind::Command => Proposal::decode(&entry.data).map(|p| p.command),
                        _ => None,
                    };
                    replica.store.apply(entry.index, command.as_deref());
                }
            }
        }
        let Some((from, to, bytes)) = wire.pop_front() else { return };
        if let Some(replica) = replicas.get_mut(&to) {
            let msg = postcard::from_bytes::<P::Message>(&bytes)
                .expect("a message decodes as it was encoded");
            replica.protocol.step(from, msg);
        }
    }
}

/// The message's kind as the protocol names it, or, for protocols that leave
/// `message_kind` at its default, the enum variant postcard wrote first.
fn kind_of<P: Protocol>(protocol: &P, msg: &P::Message, bytes: &[u8]) -> String {
    match protocol.message_kind(msg) {
        "message" => format!("variant-{:02}", bytes.first().copied().unwrap_or(0)),
        kind => kind.to_string(),
    }
}

fn take_snapshot<P: Protocol>(replica: &mut Replica<P>, membership: &Membership) {
    let index = replica.store.applied_index();
    if index == 0 {
        return;
    }
    let meta = SnapshotMeta {
        index,
        term: replica.protocol.status().term,
        membership: membership.clone(),
    };
    let data = replica.store.snapshot();
    replica.protocol.snapshot_taken(Snapshot { meta, data });
}

/// A mix of the commands clients send: puts, deletes and a txn.
fn command(n: u64) -> Bytes {
    let key = format!("key-{}", n % 5);
    match n % 4 {
        0 => Command::DeleteRange(DeleteRangeRequest::key(key)),
        1 => Command::Txn(TxnRequest {
            success: vec![conclave_kv::RequestOp::Put(PutRequest::new(key, "txn"))],
            ..TxnRequest::default()
        }),
        _ => Command::Put(PutRequest::new(key, format!("value-{n}"))),
    }
    .encode()
}
