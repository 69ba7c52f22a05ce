//! etcd's convention for naming a set of keys with `key` and `range_end`.
//!
//! An empty `range_end` names the single key `key`; the one-byte `range_end` `"\0"` names every
//! key `>= key`; any other `range_end` names the half-open interval `[key, range_end)`, which is
//! empty when `range_end <= key`.

use bytes::Bytes;
use std::ops::Bound;

/// The `range_end` that selects every key starting with `prefix` (etcd's `GetPrefixRangeEnd`,
/// what `etcdctl get --prefix` sends): the prefix with its last byte below 0xff incremented and
/// the bytes after it dropped. An empty or all-0xff prefix gives `"\0"`, every key.
pub fn prefix_range_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return Bytes::from(end);
        }
        end.pop();
    }
    Bytes::from_static(b"\0")
}

/// Lower and upper bounds over keys, as an ordered map's `range` takes them.
pub(crate) type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// A parsed `key`/`range_end` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange {
    Single(Bytes),
    /// Every key `>= start`.
    From(Bytes),
    /// `[start, end)`.
    Between(Bytes, Bytes),
}

impl KeyRange {
    pub fn new(key: &Bytes, range_end: &Bytes) -> Self {
        match &range_end[..] {
            [] => Self::Single(key.clone()),
            [0] => Self::From(key.clone()),
            _ => Self::Between(key.clone(), range_end.clone()),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            Self::Single(k) => key == &k[..],
            Self::From(start) => key >= &start[..],
            Self::Between(start, end) => key >= &start[..] && key < &end[..],
        }
    }

    /// Bounds for an ordered map's `range`, or `None` when the range is empty (an inverted
    /// interval would make `range` panic).
    pub fn bounds(&self) -> Option<KeyBounds<'_>> {
        match self {
            Self::Single(k) => Some((Bound::Included(&k[..]), Bound::Included(&k[..]))),
            Self::From(start) => Some((Bound::Included(&start[..]), Bound::Unbounded)),
            Self::Between(start, end) if start < end => {
                Some((Bound::Included(&start[..]), Bound::Excluded(&end[..])))
            }
            Self::Between(..) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_range_end(b"foo"), Bytes::from_static(b"fop"));
        assert_eq!(prefix_range_end(b"a\xff"), Bytes::from_static(b"b"));
        assert_eq!(prefix_range_end(b"\xff\xff"), Bytes::from_static(b"\0"));
        assert_eq!(prefix_range_end(b""), Bytes::from_static(b"\0"));
    }

    #[test]
    fn ranges_follow_etcd_conventions() {
        let k = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert!(KeyRange::new(&k("a"), &k("")).contains(b"a"));
        assert!(!KeyRange::new(&k("a"), &k("")).contains(b"ab"));
        assert!(KeyRange::new(&k("b"), &k("\0")).contains(b"zzz"));
        assert!(!KeyRange::new(&k("b"), &k("\0")).contains(b"a"));
        assert!(KeyRange::new(&k("a"), &k("c")).contains(b"b"));
        assert!(!KeyRange::new(&k("a"), &k("c")).contains(b"c"));
        assert_eq!(KeyRange::new(&k("c"), &k("a")).bounds(), None);
    }
}
