//! The simulator's agenda: every future event, ordered by virtual time and then by the order
//! in which it was scheduled, so that equal times never depend on a heap's internals.

use crate::clients::{Reply, Request};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Something that will happen.
#[derive(Debug)]
pub(crate) enum Event<M> {
    /// A node's clock ticks. Ticks of an earlier incarnation (before a crash) are ignored.
    Tick { node: usize, incarnation: u32 },
    /// A peer message arrives.
    Deliver { from: usize, to: usize, msg: M },
    /// A client's request arrives at a node.
    Request { node: usize, request: Request },
    /// A node's answer arrives at a client.
    Reply { client: usize, op: u64, reply: Reply },
    /// A client gives up on its current operation.
    ClientTimeout { client: usize, op: u64 },
    /// A client is ready to issue its next operation.
    ClientReady { client: usize },
    /// The fault injector acts.
    Nemesis,
    /// A partition ends.
    Heal { partition: u64 },
    /// A crashed node comes back.
    Restart { node: usize },
    /// A node crashes (scheduled a little after an event, for leader churn).
    Crash { node: usize, incarnation: u32 },
    /// A node is cut off from its peers (clients still reach it).
    Isolate { node: usize, incarnation: u32 },
    /// The fault period ends: heal everything, restart every node.
    FaultsEnd,
    /// After the quiet period: issue the final write.
    FinalWrite,
    /// Poll for convergence once the final write succeeded.
    ConvergenceCheck,
}

impl<M> Event<M> {
    /// A short label for traces.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Tick { node, .. } => format!("tick n{}", node + 1),
            Self::Deliver { from, to, .. } => format!("deliver n{} -> n{}", from + 1, to + 1),
            Self::Request { node, request } => {
                format!("request c{} op {} at n{}", request.client, request.op, node + 1)
            }
            Self::Reply { client, op, .. } => format!("reply to c{client} op {op}"),
            Self::ClientTimeout { client, op } => format!("timeout c{client} op {op}"),
            Self::ClientReady { client } => format!("client c{client} ready"),
            Self::Nemesis => "nemesis".into(),
            Self::Heal { partition } => format!("heal partition {partition}"),
            Self::Restart { node } => format!("restart n{}", node + 1),
            Self::Crash { node, .. } => format!("crash n{}", node + 1),
            Self::Isolate { node, .. } => format!("isolate n{}", node + 1),
            Self::FaultsEnd => "faults end".into(),
            Self::FinalWrite => "final write".into(),
            Self::ConvergenceCheck => "convergence check".into(),
        }
    }
}

struct Scheduled<M> {
    at_us: u64,
    seq: u64,
    event: Event<M>,
}

impl<M> PartialEq for Scheduled<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}

impl<M> Eq for Scheduled<M> {}

impl<M> PartialOrd for Scheduled<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<M> Ord for Scheduled<M> {
    /// Reversed, so that the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

/// The agenda. Times are virtual microseconds, so that clock drift can scale a tick by a
/// fraction of a millisecond.
pub(crate) struct Agenda<M> {
    heap: BinaryHeap<Scheduled<M>>,
    seq: u64,
}

impl<M> Agenda<M> {
    pub(crate) fn new() -> Self {
        Self { heap: BinaryHeap::new(), seq: 0 }
    }

    pub(crate) fn schedule(&mut self, at_us: u64, event: Event<M>) {
        self.seq += 1;
        self.heap.push(Scheduled { at_us, seq: self.seq, event });
    }

    /// The next event and its time.
    pub(crate) fn pop(&mut self) -> Option<(u64, Event<M>)> {
        self.heap.pop().map(|s| (s.at_us, s.event))
    }
}

impl<M> std::fmt::Debug for Agenda<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agenda").field("pending", &self.heap.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_in_scheduling_order() {
        let mut agenda: Agenda<()> = Agenda::new();
        agenda.schedule(20, Event::Nemesis);
        agenda.schedule(10, Event::Restart { node: 1 });
        agenda.schedule(10, Event::Restart { node: 2 });
        let order: Vec<_> =
            std::iter::from_fn(|| agenda.pop()).map(|(t, e)| (t, e.label())).collect();
        assert_eq!(
            order,
            vec![(10, "restart n2".into()), (10, "restart n3".into()), (20, "nemesis".into())]
        );
    }
}
