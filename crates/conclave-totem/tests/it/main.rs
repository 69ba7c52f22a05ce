//! Integration tests of the Totem member, over a synchronous in-test network.

mod chaos;
mod durability;
mod membership;
mod net;
mod ordering;
