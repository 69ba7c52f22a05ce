//! The per-member record of what was delivered, in order, for the simulator's checkers.
//!
//! This is the extended-virtual-synchrony view (Totem §2): regular messages, identified by ring
//! and sequence number, interleaved with the configurations they were delivered in. It is kept
//! apart from the committed log: every member delivers, but only the primary component commits.

use crate::{Delivery, RingId};
use conclave_core::NodeId;
use std::collections::VecDeque;

/// One delivery event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// A regular message.
    Message(DeliveredMessage),
    /// A configuration change: messages after it are delivered in this configuration.
    Configuration(Configuration),
}

/// A regular message as delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveredMessage {
    /// The ring that ordered the message, and its sequence number there.
    pub ring: RingId,
    pub seq: u64,
    pub origin: NodeId,
    /// The order the member claims to deliver it in (safe: every member of the configuration
    /// has it).
    pub order: Delivery,
    pub what: DeliveredWhat,
}

/// What a delivered message carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveredWhat {
    /// A batch of commands, named by its last entry (the one its delivery commits through).
    Entry {
        index: u64,
        term: u64,
    },
    Read,
}

/// A configuration, regular or transitional (Totem §4.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configuration {
    pub kind: ConfigurationKind,
    /// The new ring (for a transitional configuration, the ring being installed).
    pub ring: RingId,
    pub members: Vec<NodeId>,
    /// Whether the configuration holds a majority of the configured members.
    pub primary: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigurationKind {
    Regular,
    /// The members of the new ring that come from the same old ring: the old ring's remaining
    /// messages are delivered in it.
    Transitional,
}

/// A bounded log of delivery events: checkers read it by event number or drain it; a driver
/// that never does loses only the oldest events.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeliveryLog {
    events: VecDeque<Delivered>,
    /// Events no longer held (taken or pushed out): the number of the first one held.
    dropped: u64,
}

const CAPACITY: usize = 1 << 13;

impl DeliveryLog {
    pub fn push(&mut self, event: Delivered) {
        if self.events.len() == CAPACITY {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
    }

    pub fn events(&self) -> impl Iterator<Item = &Delivered> {
        self.events.iter()
    }

    /// How many events were ever pushed.
    pub fn total(&self) -> u64 {
        self.dropped + self.events.len() as u64
    }

    /// The events numbered `from` on (numbers count from 0 over the log's life), with their
    /// numbers; events already dropped are skipped.
    pub fn since(&self, from: u64) -> impl Iterator<Item = (u64, &Delivered)> {
        let skip = from.saturating_sub(self.dropped) as usize;
        self.events.iter().enumerate().skip(skip).map(|(i, e)| (self.dropped + i as u64, e))
    }

    pub fn take(&mut self) -> Vec<Delivered> {
        self.dropped += self.events.len() as u64;
        self.events.drain(..).collect()
    }
}
