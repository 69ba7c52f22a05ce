//! Totem in the simulator: the adapter that builds members, and the checker of Totem's
//! delivery guarantees (Amir et al., TOCS 1995, §2) over every member's delivery log:
//!
//! - **No duplicates, one total order**: a member delivers each message (ring, sequence number)
//!   at most once, and in increasing (ring, seq) order. Rings a member passes through are
//!   numbered in increasing order, so this makes any two members deliver the messages they both
//!   deliver in the same order; and a message carries the same content at every member.
//! - **Safe delivery** (§3.2): a message delivered in safe order is held, at that moment, by
//!   every member of the configuration it is delivered in (except members that crashed since
//!   that configuration was installed, which forgot it).
//! - **Virtual synchrony** (§2, extended virtual synchrony): members that move through the same
//!   two consecutive configurations deliver the same messages in the first.
//! - **Primary component**: a configuration counts as primary only with a majority of the
//!   configured members.
//! - **The primary component's log** (Raft-like, rings as terms): entries with the same index
//!   and ring hold the same command, and a member never replaces an entry at or below its own
//!   committed index.
//!
//! State machine safety and linearizability of the clients' history are the simulator's
//! generic checks. The checker's core works on plain delivery events, so its unit tests can
//! plant violations without running the protocol.

use super::{Checker, Cluster, Observation, SimProtocol};
use bytes::Bytes;
use conclave_core::{DetRng, Entry, Membership, NodeId, Recovered};
use conclave_totem::{
    Configuration, ConfigurationKind, Delivered, DeliveredWhat, Delivery, PlantedBug, RingId,
    Totem, TotemConfig,
};
use std::collections::{BTreeMap, BTreeSet};

/// The protocol type this module adapts.
pub type Adapter = Totem;

impl SimProtocol for Totem {
    const NAME: &'static str = "totem";
    const PLANTS: &'static [&'static str] = &["ack-agreed-as-safe", "minority-accepts-writes"];

    type Config = TotemConfig;
    type Checker = TotemChecker;

    /// Defaults for the timeouts (a ring re-forms within about 2.5 s); flow control and the
    /// idle hold vary, so that seeds cover one message per visit as well as full windows.
    /// Delivery stays safe: agreed delivery does not promise linearizable writes.
    fn config(rng: &mut DetRng, plant: Option<&str>) -> TotemConfig {
        let mut config = TotemConfig::default();
        config.window_size = [4, 16, 50][rng.below(3) as usize];
        config.max_messages_per_visit = [1, 3, 17][rng.below(3) as usize].min(config.window_size);
        config.token_hold_ms = [0, 10][rng.below(2) as usize];
        config.planted_bug = plant.map(|name| match name {
            "ack-agreed-as-safe" => PlantedBug::AckAgreedAsSafe,
            "minority-accepts-writes" => PlantedBug::MinorityAcceptsWrites,
            other => panic!("totem has no planted bug {other}"),
        });
        config
    }

    fn tick_interval_ms(config: &TotemConfig) -> u64 {
        config.tick_interval_ms
    }

    fn build(
        id: NodeId,
        membership: &Membership,
        config: &TotemConfig,
        recovered: Recovered,
        seed: u64,
    ) -> Result<Totem, String> {
        Totem::new(id, membership.clone(), config.clone(), recovered, seed)
            .map_err(|e| e.to_string())
    }
}

/// A message: the ring that ordered it and its sequence number there.
type Msg = (RingId, u64);

/// A configuration as a map key.
type ConfigKey = (bool, RingId, Vec<NodeId>);

fn config_key(c: &Configuration) -> ConfigKey {
    (c.kind == ConfigurationKind::Transitional, c.ring, c.members.clone())
}

/// What the checker follows for one incarnation of one member.
#[derive(Debug, Default)]
struct Track {
    /// The number of the next delivery event to read.
    cursor: u64,
    /// When this incarnation started (virtual ms).
    started_ms: u64,
    config: Option<Configuration>,
    /// Messages delivered in `config` so far.
    in_config: BTreeSet<Msg>,
    last: Option<Msg>,
}

/// Totem's invariants, checked incrementally from each member's delivery log.
#[derive(Debug, Default)]
pub struct TotemChecker {
    tracks: BTreeMap<NodeId, Track>,
    /// When any member first installed each ring.
    installed_ms: BTreeMap<RingId, u64>,
    /// What each message carried, from its first delivery.
    contents: BTreeMap<Msg, (NodeId, DeliveredWhat)>,
    /// (configuration, next configuration) → the messages delivered in the first, and who
    /// moved through the pair first.
    segments: BTreeMap<(ConfigKey, ConfigKey), (NodeId, BTreeSet<Msg>)>,
    /// The first copy seen of each (index, term) entry persisted anywhere.
    entries: BTreeMap<(u64, u64), Bytes>,
    /// The term of every entry applied anywhere (so committed).
    committed: BTreeMap<u64, u64>,
    /// Each member's committed index when last observed.
    commit_seen: BTreeMap<NodeId, u64>,
}

impl Checker<Totem> for TotemChecker {
    fn observe(&mut self, event: &Observation<'_, Totem>) -> Result<(), String> {
        if event.restarted || !self.tracks.contains_key(&event.id) {
            let started_ms = if event.restarted { event.now_ms } else { 0 };
            self.tracks.insert(event.id, Track { started_ms, ..Track::default() });
        }
        let cursor = self.tracks[&event.id].cursor;
        let events: Vec<Delivered> =
            event.node.deliveries_since(cursor).map(|(_, e)| e.clone()).collect();
        if let Some(track) = self.tracks.get_mut(&event.id) {
            track.cursor = event.node.deliveries_total();
        }
        if event.restarted {
            self.commit_seen.insert(event.id, event.node.delivered_index());
        }
        self.log(event.id, event.persisted, event.applied)?;
        self.commit_seen.insert(event.id, event.node.delivered_index());
        let quorum = event.node.configured().quorum();
        let cluster = event.cluster;
        let holds = |member: NodeId, msg: Msg| holds(cluster, member, msg);
        for delivered in events {
            self.delivered(event.id, event.now_ms, quorum, delivered, &holds)?;
        }
        Ok(())
    }
}

/// Whether `member` is up and holds `msg`; `None` if it is down.
fn holds(cluster: Cluster<'_, Totem>, member: NodeId, msg: Msg) -> Option<bool> {
    cluster.live().find(|(id, _)| *id == member).map(|(_, t)| t.has_received(msg.0, msg.1))
}

impl TotemChecker {
    /// Checks the entries member `id` just made durable and applied.
    pub fn log(
        &mut self,
        id: NodeId,
        persisted: &[Entry],
        applied: &[Entry],
    ) -> Result<(), String> {
        let commit_seen = self.commit_seen.get(&id).copied().unwrap_or(0);
        for entry in persisted {
            if entry.index <= commit_seen
                && let Some(&term) = self.committed.get(&entry.index)
                && term != entry.term
            {
                return Err(format!(
                    "committed entry overwritten: n{id} replaced index {} (ring {term}, at or \
                     below its committed index {commit_seen}) with an entry of ring {}",
                    entry.index, entry.term
                ));
            }
            match self.entries.get(&(entry.index, entry.term)) {
                Some(data) if *data != entry.data => {
                    return Err(format!(
                        "log matching: n{id} holds a different entry at index {} of ring {} \
                         than another member did",
                        entry.index, entry.term
                    ));
                }
                Some(_) => {}
                None => {
                    self.entries.insert((entry.index, entry.term), entry.data.clone());
                }
            }
        }
        for entry in applied {
            self.committed.insert(entry.index, entry.term);
        }
        Ok(())
    }

    /// Checks one delivery event of member `id`. `holds(member, msg)` says whether another
    /// member holds a message now (`None`: it is down).
    pub fn delivered(
        &mut self,
        id: NodeId,
        now_ms: u64,
        quorum: usize,
        event: Delivered,
        holds: &dyn Fn(NodeId, Msg) -> Option<bool>,
    ) -> Result<(), String> {
        match event {
            Delivered::Configuration(config) => self.configuration(id, now_ms, quorum, config),
            Delivered::Message(m) => {
                let msg = (m.ring, m.seq);
                let track = self.tracks.entry(id).or_default();
                if track.last.is_some_and(|last| msg <= last) {
                    return Err(format!(
                        "total order: n{id} delivered {} after {}",
                        show(msg),
                        show(track.last.expect("checked"))
                    ));
                }
                track.last = Some(msg);
                track.in_config.insert(msg);
                let config = track.config.clone();
                match self.contents.get(&msg) {
                    Some(&(origin, what)) if (origin, what) != (m.origin, m.what) => {
                        return Err(format!(
                            "total order: n{id} delivered {} from n{} as {:?}, another member \
                             from n{origin} as {what:?}",
                            show(msg),
                            m.origin,
                            m.what
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.contents.insert(msg, (m.origin, m.what));
                    }
                }
                if m.order == Delivery::Safe {
                    self.safe(id, msg, config.as_ref(), holds)?;
                }
                Ok(())
            }
        }
    }

    fn configuration(
        &mut self,
        id: NodeId,
        now_ms: u64,
        quorum: usize,
        config: Configuration,
    ) -> Result<(), String> {
        if config.kind == ConfigurationKind::Regular
            && config.primary
            && config.members.len() < quorum
        {
            return Err(format!(
                "primary component: n{id} installed ring {} of {} members as primary; {quorum} \
                 are needed",
                config.ring,
                config.members.len()
            ));
        }
        self.installed_ms.entry(config.ring).or_insert(now_ms);
        let track = self.tracks.entry(id).or_default();
        let previous = track.config.replace(config.clone());
        let delivered = std::mem::take(&mut track.in_config);
        let Some(previous) = previous else {
            return Ok(());
        };
        let key = (config_key(&previous), config_key(&config));
        match self.segments.get(&key) {
            Some((other, theirs)) if *theirs != delivered => {
                let only_mine: Vec<String> =
                    delivered.difference(theirs).map(|m| show(*m)).collect();
                let only_theirs: Vec<String> =
                    theirs.difference(&delivered).map(|m| show(*m)).collect();
                Err(format!(
                    "virtual synchrony: n{id} and n{other} both moved from ring {} to {} {} but \
                     delivered different messages in the first (only n{id}: {only_mine:?}; only \
                     n{other}: {only_theirs:?})",
                    previous.ring,
                    if config.kind == ConfigurationKind::Transitional {
                        "transitional"
                    } else {
                        "ring"
                    },
                    config.ring,
                ))
            }
            Some(_) => Ok(()),
            None => {
                self.segments.insert(key, (id, delivered));
                Ok(())
            }
        }
    }

    /// Every member of the configuration holds a message delivered in safe order, unless it
    /// restarted since the message's ring was installed.
    fn safe(
        &self,
        id: NodeId,
        msg: Msg,
        config: Option<&Configuration>,
        holds: &dyn Fn(NodeId, Msg) -> Option<bool>,
    ) -> Result<(), String> {
        let Some(config) = config else {
            return Err(format!("n{id} delivered {} outside any configuration", show(msg)));
        };
        let installed = self.installed_ms.get(&msg.0).copied().unwrap_or(0);
        for &member in &config.members {
            let restarted = self.tracks.get(&member).map_or(0, |t| t.started_ms);
            if member == id || restarted > installed {
                continue;
            }
            if holds(member, msg) == Some(false) {
                return Err(format!(
                    "safe delivery: n{id} delivered {} in safe order in ring {} while member \
                     n{member} did not have it",
                    show(msg),
                    config.ring
                ));
            }
        }
        Ok(())
    }
}

fn show(msg: Msg) -> String {
    format!("message {} of ring {}", msg.1, msg.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_totem::DeliveredMessage;

    fn ring(seq: u64) -> RingId {
        RingId { seq, rep: NodeId(1) }
    }

    fn regular(seq: u64, members: &[u64]) -> Delivered {
        Delivered::Configuration(Configuration {
            kind: ConfigurationKind::Regular,
            ring: ring(seq),
            members: members.iter().map(|&m| NodeId(m)).collect(),
            primary: members.len() >= 2,
        })
    }

    fn message(ring_seq: u64, seq: u64, order: Delivery) -> Delivered {
        Delivered::Message(DeliveredMessage {
            ring: ring(ring_seq),
            seq,
            origin: NodeId(1),
            order,
            what: DeliveredWhat::Entry { index: seq, term: ring_seq },
        })
    }

    fn feed(c: &mut TotemChecker, id: u64, events: Vec<Delivered>) -> Result<(), String> {
        let everyone_holds = |_: NodeId, _: Msg| Some(true);
        for e in events {
            c.delivered(NodeId(id), 0, 2, e, &everyone_holds)?;
        }
        Ok(())
    }

    #[test]
    fn a_clean_history_passes() {
        let mut c = TotemChecker::default();
        for id in 1..=3 {
            let events = vec![
                regular(4, &[1, 2, 3]),
                message(4, 1, Delivery::Safe),
                message(4, 2, Delivery::Safe),
                regular(8, &[1, 2, 3]),
            ];
            feed(&mut c, id, events).unwrap();
        }
    }

    #[test]
    fn reordering_and_duplicates_are_caught() {
        let mut c = TotemChecker::default();
        let events =
            vec![regular(4, &[1, 2]), message(4, 2, Delivery::Safe), message(4, 1, Delivery::Safe)];
        assert!(feed(&mut c, 1, events).unwrap_err().contains("total order"));
        let mut c = TotemChecker::default();
        let events =
            vec![regular(4, &[1, 2]), message(4, 1, Delivery::Safe), message(4, 1, Delivery::Safe)];
        assert!(feed(&mut c, 1, events).unwrap_err().contains("total order"));
    }

    #[test]
    fn a_safe_message_a_member_lacks_is_caught() {
        let mut c = TotemChecker::default();
        let lacks = |member: NodeId, _: Msg| Some(member != NodeId(2));
        c.delivered(NodeId(1), 0, 2, regular(4, &[1, 2]), &lacks).unwrap();
        let err = c.delivered(NodeId(1), 0, 2, message(4, 1, Delivery::Safe), &lacks).unwrap_err();
        assert!(err.contains("safe delivery"), "{err}");
        // Agreed delivery makes no such promise.
        c.delivered(NodeId(1), 0, 2, message(4, 2, Delivery::Agreed), &lacks).unwrap();
    }

    #[test]
    fn members_moving_together_with_different_messages_are_caught() {
        let mut c = TotemChecker::default();
        feed(
            &mut c,
            1,
            vec![regular(4, &[1, 2]), message(4, 1, Delivery::Safe), regular(8, &[1, 2])],
        )
        .unwrap();
        let err = feed(&mut c, 2, vec![regular(4, &[1, 2]), regular(8, &[1, 2])]).unwrap_err();
        assert!(err.contains("virtual synchrony"), "{err}");
    }

    #[test]
    fn a_minority_primary_is_caught() {
        let mut c = TotemChecker::default();
        let mut minority = regular(4, &[1]);
        if let Delivered::Configuration(cfg) = &mut minority {
            cfg.primary = true;
        }
        assert!(feed(&mut c, 1, vec![minority]).unwrap_err().contains("primary component"));
    }

    #[test]
    fn an_overwritten_committed_entry_is_caught() {
        let mut c = TotemChecker::default();
        let e = |index, term, data: &'static str| Entry::command(index, term, Bytes::from(data));
        c.log(NodeId(1), &[e(1, 4, "a")], &[e(1, 4, "a")]).unwrap();
        c.commit_seen.insert(NodeId(2), 1);
        let err = c.log(NodeId(2), &[e(1, 8, "b")], &[]).unwrap_err();
        assert!(err.contains("committed entry overwritten"), "{err}");
        let err = c.log(NodeId(3), &[e(1, 4, "c")], &[]).unwrap_err();
        assert!(err.contains("log matching"), "{err}");
    }
}
