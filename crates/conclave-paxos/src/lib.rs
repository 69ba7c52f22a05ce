//! Multi-Paxos, as a deterministic IO-free state machine behind the conclave-core protocol
//! interface.
//!
//! Every replica is proposer, acceptor and learner (Lamport, "Paxos Made Simple", §2–3). A
//! stable leader runs phase 1 once for all future slots and then phase 2 per command, batched
//! and pipelined; its ballot is `(round, node id)`. Followers detect a failed leader with a
//! randomized timeout driven by ticks and run phase 1 themselves; the new leader re-proposes
//! whatever the promises reported and fills gaps with no-ops. Learners apply chosen slots
//! strictly in order, learning them from the leader's commit index and catching up from the
//! leader (or its snapshot). Reads are linearizable through a leader lease or a read marker in
//! the log. Membership changes go through the log and take effect α slots later.
//!
//! Durable state maps onto the shared log store: the log holds one entry per slot (`index` =
//! slot, `term` = the packed [`Ballot`] it was accepted at), contiguous from the snapshot on;
//! the hard state holds the promised ballot, the last round used, and the membership history.
//! See `docs/protocols/paxos.md` for the algorithm in full.
//!
//! ```
//! use conclave_core::{Membership, NodeId, Protocol, Recovered};
//! use conclave_paxos::{Paxos, PaxosConfig};
//!
//! let members = Membership::new([NodeId(1)]);
//! let mut node =
//!     Paxos::new(NodeId(1), members, PaxosConfig::default(), Recovered::default(), 7).unwrap();
//! for _ in 0..40 {
//!     node.tick();
//!     let _ = node.ready();
//! }
//! assert!(node.is_leader(), "a lone member elects itself once its timer fires");
//! ```

mod acceptor;
mod ballot;
mod config;
mod config_history;
mod counters;
mod error;
mod forward_dedup;
mod hard_state;
mod leader;
mod leader_state;
mod learner;
mod message;
mod paxos;
mod proposer;
mod reads;
mod slot_log;

pub use ballot::{Ballot, MAX_NODE_ID, NODE_BITS};
pub use config::{PaxosConfig, PlantedBug};
pub use error::PaxosError;
pub use hard_state::HardState;
pub use message::Message;
pub use paxos::{PROTOCOL_NAME, Paxos};
