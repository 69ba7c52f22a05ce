//! The Totem single-ring ordering and membership protocol, deterministic and IO-free.
//!
//! After Amir, Moser, Melliar-Smith, Agarwal and Ciarfella, "The Totem Single-Ring Ordering and
//! Membership Protocol", ACM TOCS 13(4), 1995. [`Totem`] implements
//! [`conclave_core::Protocol`]: it is fed ticks, peer messages, proposals and read requests, and
//! hands back a [`conclave_core::Ready`] of effects.
//!
//! - **Ordering** (§3): a token circulates around the ring (members in ascending id order);
//!   only its holder broadcasts, stamping messages with consecutive sequence numbers. The token
//!   carries the ring id, a token sequence number that exposes duplicates, `seq`, `aru` with the
//!   member that last lowered it, and retransmission requests. Flow control bounds the messages
//!   per rotation (`window_size`) and per visit (`max_messages_per_visit`); one message carries
//!   a batch of the holder's queued proposals. An idle ring's token rests at the
//!   representative until a request arrives anywhere (a `Wake` fetches it).
//! - **Delivery**: agreed order (every earlier message has arrived) or safe order (every member
//!   of the ring has it: the token's aru covered it on two successive visits).
//! - **Membership** (§4): token loss → gather (join messages until consensus on the member set)
//!   → commit (a commit token rotates twice) → recovery (members from the same old ring exchange
//!   its messages, then deliver the rest of them, a transitional configuration and the new
//!   regular one: extended virtual synchrony) → operational. Rings split by a partition merge
//!   through the same path once their representatives hear of each other.
//! - **Primary component**: only a ring with a majority of the configured members accepts
//!   writes and linearizable reads, and only its deliveries are committed to the state machine.
//!   Committed entries form one global sequence across rings: a new primary component adopts
//!   its members' most up-to-date log, as a new Raft term would (see `sync`), before it starts
//!   a no-op stamped with its own ring.
//!
//! Durability: the hard state (highest ring sequence seen, last installed ring, committed
//! index) and every entry received in order are persisted (`Ready::hard_state`,
//! `Ready::entries`) before anything that depends on them is sent. Regular messages depend on
//! nothing on the sender's disk and leave eagerly (`Ready::eager_messages`); so does the token
//! of an open ring, whose aru then counts only entries already synced here (see `token`), so
//! that safe delivery still means "durable on every member". A hard state that moved only in
//! its committed index is written lazily (a restarted member commits those entries again).
//! A restarted member rejoins by gathering and is caught up during recovery with the entries it
//! lacks or a snapshot.

mod clients;
mod config;
mod counters;
mod delivery;
mod error;
mod gather;
mod hard_state;
mod log;
mod membership;
mod message;
mod protocol;
mod recovery;
mod ring;
mod ring_buffer;
mod ring_id;
mod sync;
mod token;
mod totem;

pub use config::{Delivery, PlantedBug, TotemConfig};
pub use delivery::{Configuration, ConfigurationKind, Delivered, DeliveredMessage, DeliveredWhat};
pub use error::TotemError;
pub use hard_state::HardState;
pub use message::{
    Body, CommitToken, Content, Join, LogSummary, Mcast, MemberInfo, MergeDetect, OldMessage,
    Payload, RecoveryProgress, Sync, Token, TotemMessage, Wake,
};
pub use ring_id::RingId;
pub use totem::{MembershipState, Totem};
