//! Membership and failure detection, driven by ticks.
//!
//! Gossip-style failure detection (van Renesse, Minsky and Hayden, 1998) with SWIM's suspicion
//! stage (Das, Gupta and Motivala, 2002, §4.2): every replica bumps its own heartbeat counter
//! each round and gossips the member list with everyone's latest heartbeat. A member whose
//! heartbeat has not moved for `suspect_timeout` becomes [`Liveness::Suspect`] (still gossiped
//! with, but not counted as healthy); after `dead_timeout` it is declared dead and pruned. A
//! pruned member's last heartbeat is remembered so stale gossip cannot bring it back; a newer
//! heartbeat (it came back, or restarted with a higher generation) does.

use crate::message::Heartbeat;
use conclave_core::NodeId;
use std::collections::BTreeMap;

/// How a known member looks from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Liveness {
    Alive,
    /// Silent for longer than the suspect timeout.
    Suspect,
}

#[derive(Clone, Debug)]
struct Member {
    heartbeat: Heartbeat,
    /// The tick at which the heartbeat last moved (or the member was first heard of).
    last_progress_tick: u64,
    liveness: Liveness,
}

/// The member list of one replica (itself excluded).
#[derive(Clone, Debug)]
pub struct Members {
    me: NodeId,
    own: Heartbeat,
    members: BTreeMap<NodeId, Member>,
    departed: BTreeMap<NodeId, Heartbeat>,
    suspect_ticks: u64,
    dead_ticks: u64,
    pruned_total: u64,
}

impl Members {
    pub fn new(
        me: NodeId,
        generation: u64,
        initial: impl IntoIterator<Item = NodeId>,
        suspect_ticks: u64,
        dead_ticks: u64,
    ) -> Self {
        let members = initial
            .into_iter()
            .filter(|&id| id != me)
            .map(|id| {
                let member = Member {
                    heartbeat: Heartbeat::default(),
                    last_progress_tick: 0,
                    liveness: Liveness::Alive,
                };
                (id, member)
            })
            .collect();
        Self {
            me,
            own: Heartbeat { generation, counter: 0 },
            members,
            departed: BTreeMap::new(),
            suspect_ticks,
            dead_ticks,
            pruned_total: 0,
        }
    }

    /// Bumps this replica's heartbeat; called once per round.
    pub fn beat(&mut self) {
        self.own.counter = self.own.counter.saturating_add(1);
    }

    pub fn own(&self) -> Heartbeat {
        self.own
    }

    /// This replica and every member it knows, with heartbeats: what a `Syn` or `Ack` carries.
    pub fn digest(&self) -> Vec<(NodeId, Heartbeat)> {
        let mut list: Vec<_> = self.members.iter().map(|(&id, m)| (id, m.heartbeat)).collect();
        let at = list.partition_point(|(id, _)| *id < self.me);
        list.insert(at, (self.me, self.own));
        list
    }

    /// Merges a peer's member list. Returns the members heard of for the first time (or again
    /// after being pruned).
    pub fn observe(&mut self, list: &[(NodeId, Heartbeat)], now_tick: u64) -> Vec<NodeId> {
        let mut joined = Vec::new();
        for &(id, heartbeat) in list {
            if id == self.me {
                // Someone holds a newer heartbeat of ours than we do: we restarted without our
                // hard state. Move past it so our own news is not mistaken for stale.
                if heartbeat > self.own {
                    self.own = Heartbeat {
                        generation: heartbeat.generation,
                        counter: heartbeat.counter.saturating_add(1),
                    };
                }
                continue;
            }
            match self.members.get_mut(&id) {
                Some(member) => {
                    if heartbeat > member.heartbeat {
                        member.heartbeat = heartbeat;
                        member.last_progress_tick = now_tick;
                        member.liveness = Liveness::Alive;
                    }
                }
                None => {
                    if self.departed.get(&id).is_some_and(|&last| heartbeat <= last) {
                        continue;
                    }
                    self.departed.remove(&id);
                    let member = Member {
                        heartbeat,
                        last_progress_tick: now_tick,
                        liveness: Liveness::Alive,
                    };
                    self.members.insert(id, member);
                    joined.push(id);
                }
            }
        }
        joined
    }

    /// Moves silent members to suspect, and prunes the dead. Returns the pruned.
    pub fn check(&mut self, now_tick: u64) -> Vec<NodeId> {
        let mut pruned = Vec::new();
        for (&id, member) in &mut self.members {
            let silence = now_tick.saturating_sub(member.last_progress_tick);
            if silence >= self.dead_ticks {
                pruned.push(id);
            } else if silence >= self.suspect_ticks {
                member.liveness = Liveness::Suspect;
            }
        }
        for id in &pruned {
            if let Some(member) = self.members.remove(id) {
                self.departed.insert(*id, member.heartbeat);
                self.pruned_total += 1;
            }
        }
        pruned
    }

    /// Members not yet declared dead (alive or suspect), in id order.
    pub fn live(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.keys().copied()
    }

    pub fn live_count(&self) -> usize {
        self.members.len()
    }

    pub fn is_live(&self, id: NodeId) -> bool {
        self.members.contains_key(&id)
    }

    pub fn liveness(&self, id: NodeId) -> Option<Liveness> {
        self.members.get(&id).map(|m| m.liveness)
    }

    pub fn suspects(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().filter(|(_, m)| m.liveness == Liveness::Suspect).map(|(&id, _)| id)
    }

    pub fn pruned_total(&self) -> u64 {
        self.pruned_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(generation: u64, counter: u64) -> Heartbeat {
        Heartbeat { generation, counter }
    }

    #[test]
    fn stale_gossip_does_not_revive_a_pruned_member() {
        let mut m = Members::new(NodeId(1), 1, [NodeId(2)], 10, 20);
        m.observe(&[(NodeId(2), hb(1, 5))], 0);
        assert_eq!(m.check(20), vec![NodeId(2)]);
        assert!(m.observe(&[(NodeId(2), hb(1, 5))], 21).is_empty());
        assert_eq!(m.observe(&[(NodeId(2), hb(2, 0))], 22), vec![NodeId(2)]);
    }
}
