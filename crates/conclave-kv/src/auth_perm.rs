//! Key permissions of roles, and whether a set of them covers a requested key range.
//!
//! A permission names keys the way every etcd request does, with `key` and `range_end` (see
//! `key_range.rs`): one key, a half-open interval `[key, range_end)` (a prefix is the interval
//! up to [`crate::prefix_range_end`]), or every key from `key` on (`range_end` = `"\0"`). A
//! request is allowed when the union of the caller's permissions of the right kind covers the
//! whole range it touches — not merely overlaps it — which is etcd's rule too: a user allowed
//! `a/` may not read `[a/, c)` even though part of it is theirs.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// What a permission lets its holder do (etcd's `authpb.Permission.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PermType {
    Read,
    Write,
    ReadWrite,
}

impl PermType {
    /// Whether this permission grants `access`.
    pub fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Self::ReadWrite, _) | (Self::Read, Access::Read) | (Self::Write, Access::Write)
        )
    }
}

/// What a request does to a range of keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
}

/// One key permission of a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub perm_type: PermType,
    pub key: Bytes,
    /// Empty for the single key `key`, `"\0"` for every key from `key` on.
    pub range_end: Bytes,
}

impl Permission {
    pub fn new(perm_type: PermType, key: impl Into<Bytes>, range_end: impl Into<Bytes>) -> Self {
        Self { perm_type, key: key.into(), range_end: range_end.into() }
    }

    /// Whether this permission names the same keys as `key`/`range_end` (revoking matches
    /// permissions this way, whatever their type).
    pub fn same_keys(&self, key: &[u8], range_end: &[u8]) -> bool {
        self.key == key && self.range_end == range_end
    }
}

/// The end of an interval of keys: before a given key, or past every key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    Before(Vec<u8>),
    Unbounded,
}

impl Ord for End {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Before(a), Self::Before(b)) => a.cmp(b),
            (Self::Before(_), Self::Unbounded) => Ordering::Less,
            (Self::Unbounded, Self::Before(_)) => Ordering::Greater,
            (Self::Unbounded, Self::Unbounded) => Ordering::Equal,
        }
    }
}

impl PartialOrd for End {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A half-open interval of keys `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    start: Vec<u8>,
    end: End,
}

impl Interval {
    /// The keys etcd's `key`/`range_end` pair names. A single key `k` is `[k, k + "\0")`, so
    /// single keys and intervals merge and compare alike. An inverted or empty interval is
    /// taken as the single key `key`: it reads nothing, but asking for it still needs the right
    /// to its first key, which keeps the check on the safe side.
    fn of(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [0] => Self { start: key.to_vec(), end: End::Unbounded },
            end if !end.is_empty() && end > key => {
                Self { start: key.to_vec(), end: End::Before(end.to_vec()) }
            }
            _ => {
                let mut next = key.to_vec();
                next.push(0);
                Self { start: key.to_vec(), end: End::Before(next) }
            }
        }
    }

    /// Whether `key` lies at or before this interval's end, so that an interval starting at
    /// `key` continues this one without a gap.
    fn reaches(&self, key: &[u8]) -> bool {
        match &self.end {
            End::Unbounded => true,
            End::Before(end) => key <= &end[..],
        }
    }

    fn contains(&self, other: &Self) -> bool {
        self.start <= other.start && self.end >= other.end
    }
}

/// Whether the permissions that grant `access` among `permissions` together cover every key
/// in `key`/`range_end`.
pub fn permits<'a>(
    permissions: impl IntoIterator<Item = &'a Permission>,
    access: Access,
    key: &[u8],
    range_end: &[u8],
) -> bool {
    let wanted = Interval::of(key, range_end);
    let mut granted: Vec<Interval> = permissions
        .into_iter()
        .filter(|p| p.perm_type.allows(access))
        .map(|p| Interval::of(&p.key, &p.range_end))
        .collect();
    granted.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| b.end.cmp(&a.end)));
    // Merge overlapping and touching intervals; one merged interval must hold the request.
    let mut merged: Option<Interval> = None;
    for next in granted {
        match &mut merged {
            Some(current) if current.reaches(&next.start) => {
                if next.end > current.end {
                    current.end = next.end;
                }
            }
            _ => {
                if merged.as_ref().is_some_and(|done| done.contains(&wanted)) {
                    return true;
                }
                merged = Some(next);
            }
        }
    }
    merged.is_some_and(|last| last.contains(&wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix_range_end;

    fn perm(t: PermType, key: &str, end: &[u8]) -> Permission {
        Permission::new(t, Bytes::copy_from_slice(key.as_bytes()), Bytes::copy_from_slice(end))
    }

    fn prefix(t: PermType, p: &str) -> Permission {
        Permission::new(t, Bytes::copy_from_slice(p.as_bytes()), prefix_range_end(p.as_bytes()))
    }

    #[test]
    fn exact_key_permits_only_that_key() {
        let perms = [perm(PermType::ReadWrite, "k", b"")];
        assert!(permits(&perms, Access::Read, b"k", b""));
        assert!(permits(&perms, Access::Write, b"k", b""));
        assert!(!permits(&perms, Access::Read, b"k2", b""));
        assert!(!permits(&perms, Access::Read, b"j", b""));
        // A range starting at the key reaches past it.
        assert!(!permits(&perms, Access::Read, b"k", b"l"));
        // `[k, k\0)` is exactly the key.
        assert!(permits(&perms, Access::Read, b"k", b"k\0"));
    }

    #[test]
    fn prefix_permits_keys_and_subranges_under_it() {
        let perms = [prefix(PermType::Read, "app/")];
        assert!(permits(&perms, Access::Read, b"app/x", b""));
        assert!(permits(&perms, Access::Read, b"app/", b""));
        assert!(permits(&perms, Access::Read, b"app/", &prefix_range_end(b"app/")));
        assert!(permits(&perms, Access::Read, b"app/a/", &prefix_range_end(b"app/a/")));
        assert!(!permits(&perms, Access::Read, b"app", b""));
        assert!(!permits(&perms, Access::Read, b"apq", b""));
        // Wider than the prefix: refused even though it overlaps.
        assert!(!permits(&perms, Access::Read, b"app/", b"b"));
        assert!(!permits(&perms, Access::Read, b"a", &prefix_range_end(b"a")));
        assert!(!permits(&perms, Access::Read, b"app/", b"\0"));
    }

    #[test]
    fn read_and_write_are_separate_and_readwrite_is_both() {
        let read = [prefix(PermType::Read, "p/")];
        assert!(!permits(&read, Access::Write, b"p/k", b""));
        let write = [prefix(PermType::Write, "p/")];
        assert!(permits(&write, Access::Write, b"p/k", b""));
        assert!(!permits(&write, Access::Read, b"p/k", b""));
        let both = [prefix(PermType::ReadWrite, "p/")];
        assert!(permits(&both, Access::Write, b"p/k", b""));
        assert!(permits(&both, Access::Read, b"p/k", b""));
    }

    #[test]
    fn ranges_and_from_key_permissions() {
        let range = [perm(PermType::Read, "b", b"d")];
        assert!(permits(&range, Access::Read, b"b", b""));
        assert!(permits(&range, Access::Read, b"czz", b""));
        assert!(!permits(&range, Access::Read, b"d", b""));
        assert!(permits(&range, Access::Read, b"b", b"d"));
        assert!(!permits(&range, Access::Read, b"b", b"e"));
        let from = [perm(PermType::Read, "m", b"\0")];
        assert!(permits(&from, Access::Read, b"zzz", b""));
        assert!(permits(&from, Access::Read, b"m", b"\0"));
        assert!(!permits(&from, Access::Read, b"l", b"\0"));
        let all = [perm(PermType::ReadWrite, "", b"\0")];
        assert!(permits(&all, Access::Write, b"\0", b"\0"));
        assert!(permits(&all, Access::Read, b"anything", b""));
    }

    #[test]
    fn adjacent_and_overlapping_permissions_merge() {
        let perms = [
            perm(PermType::Read, "a", b"c"),
            perm(PermType::ReadWrite, "c", b"e"),
            perm(PermType::Read, "d", b"f"),
        ];
        assert!(permits(&perms, Access::Read, b"a", b"f"));
        assert!(!permits(&perms, Access::Read, b"a", b"g"));
        // Only [c, e) grants writes.
        assert!(!permits(&perms, Access::Write, b"a", b"d"));
        assert!(permits(&perms, Access::Write, b"c", b"e"));
        // A gap between two intervals is not covered.
        let gap = [perm(PermType::Read, "a", b"b"), perm(PermType::Read, "c", b"d")];
        assert!(!permits(&gap, Access::Read, b"a", b"d"));
        assert!(permits(&gap, Access::Read, b"c", b"c\x01"));
    }

    #[test]
    fn no_permissions_permit_nothing() {
        assert!(!permits(&[], Access::Read, b"k", b""));
        // An inverted request range needs the right to its first key.
        let perms = [perm(PermType::Read, "k", b"")];
        assert!(permits(&perms, Access::Read, b"k", b"a"));
        assert!(!permits(&perms, Access::Read, b"z", b"a"));
    }
}
