//! The one tokio driver that turns any protocol into a running Consensus node.
