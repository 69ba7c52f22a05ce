//! A bound on how deeply txns nest, enforced while decoding.
//!
//! A txn may hold txns in its branches, and serde decodes (and Rust later applies and drops)
//! such a value by recursion: one stack frame group per level. Left unbounded, a command a few
//! tens of kilobytes long overflows the stack of whatever thread decodes it — and a command
//! sits in the log, so every replica would die on it, again after each restart. So the
//! decoder itself counts levels and refuses a txn (or a txn response) nested deeper than
//! [`MAX_TXN_NESTING`] before it recurses any further.
//!
//! serde offers no way to hand state down through derived impls, so the count lives in a
//! thread-local: each level's `Deserialize` enters it and leaves it when done (also when it
//! fails), so it is back to zero after every decode. postcard drops the text of custom errors;
//! [`take_exceeded`] tells the caller that the failure was this one, so it can say so.

use std::cell::Cell;

/// The deepest a txn may nest: the outermost txn is level 1, a txn in its branch level 2.
///
/// The etcd API produces at most 49 levels (protobuf decoders stop at 100 message levels and a
/// txn level is two; the 50th is refused because its answer would be one level deeper), so
/// 100 refuses nothing a client can send while keeping the recursion of decoding, applying and
/// dropping a command small next to any thread's stack.
pub const MAX_TXN_NESTING: usize = 100;

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    static EXCEEDED: Cell<bool> = const { Cell::new(false) };
}

/// One level of nesting entered; leaving it (on drop) restores the count.
pub(crate) struct Level(());

impl Drop for Level {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Enters one more level, or fails with a serde error once past [`MAX_TXN_NESTING`].
pub(crate) fn enter<E: serde::de::Error>() -> Result<Level, E> {
    let depth = DEPTH.with(|depth| {
        let next = depth.get() + 1;
        depth.set(next);
        next
    });
    let level = Level(());
    if depth > MAX_TXN_NESTING {
        EXCEEDED.with(|exceeded| exceeded.set(true));
        return Err(E::custom(format_args!("txn nested deeper than {MAX_TXN_NESTING} levels")));
    }
    Ok(level)
}

/// Whether a decode on this thread failed for nesting since the last call; resets the flag.
pub(crate) fn take_exceeded() -> bool {
    EXCEEDED.with(|exceeded| exceeded.replace(false))
}

/// Implements `Serialize` and `Deserialize` for a type whose derives were generated with
/// `#[serde(remote = "Self")]` (as inherent functions), adding one level of nesting around
/// deserialization.
macro_rules! nesting_serde {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$ty>::serialize(self, serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let _level = crate::nesting::enter::<D::Error>()?;
                <$ty>::deserialize(deserializer)
            }
        }
    };
}

pub(crate) use nesting_serde;
