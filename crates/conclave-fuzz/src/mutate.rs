//! Byte-level mutations of valid inputs, in the spirit of AFL's and libFuzzer's havoc stage.
//!
//! Decoders fail in a few classic ways, and each mutation aims at one: a flipped bit or a
//! replaced byte (checksums, enum tags, bools), truncation (every "need more bytes" path),
//! an inflated length field (preallocation from an attacker's number), repeated chunks (deep
//! nesting, long sequences), and splices of two valid inputs (fields from one message in the
//! frame of another). All randomness comes from a seeded [`DetRng`], so a run replays.

use conclave_core::DetRng;

/// Bytes that sit on the edges of common encodings: zero, one, the sign bit, the varint
/// continuation bit, all ones.
const INTERESTING_BYTES: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x40];

/// Values that break naive length arithmetic when written into a length field.
const INTERESTING_U32: [u32; 8] = [0, 1, 0x7f, 0x80, 0xffff, 0x00ff_ffff, 0x7fff_ffff, 0xffff_ffff];

/// Which mutations a [`Mutator`] draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything: also insertions, deletions, repeats and splices, which shift bytes around.
    Havoc,
    /// Only damage a disk or a crash can do to a file: bits flipped and bytes overwritten in
    /// place, ranges zeroed, the tail cut off or extended with garbage. Nothing moves, so a
    /// record that still checks out is one that was written there.
    InPlace,
}

/// Applies stacked random mutations to byte strings.
#[derive(Clone, Debug)]
pub struct Mutator {
    /// Mutated inputs are cut to this length.
    pub max_len: usize,
    pub mode: Mode,
    /// Tokens of the input's language (keys, keywords, edge-case numbers) that havoc mode
    /// inserts or writes over the input, so text formats get past their lexer.
    pub dictionary: Vec<Vec<u8>>,
}

impl Mutator {
    pub fn new(max_len: usize) -> Self {
        Self { max_len: max_len.max(1), mode: Mode::Havoc, dictionary: Vec::new() }
    }

    /// A mutator that damages files only the way storage fails (see [`Mode::InPlace`]).
    pub fn in_place(max_len: usize) -> Self {
        Self { max_len: max_len.max(1), mode: Mode::InPlace, dictionary: Vec::new() }
    }

    /// The same mutator, also drawing on `words` (see [`Mutator::dictionary`]).
    pub fn with_dictionary(mut self, words: &[&str]) -> Self {
        self.dictionary = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        self
    }

    /// A mutant of `input`: one to a few stacked mutations. `other` is a second input that
    /// splices may borrow from.
    pub fn mutate(&self, rng: &mut DetRng, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        // Mostly one or two mutations (small steps find the interesting edges), now and then
        // a pile of them.
        let rounds =
            if rng.chance(0.1) { rng.range_inclusive(3, 12) } else { rng.range_inclusive(1, 2) };
        for _ in 0..rounds {
            match self.mode {
                Mode::Havoc => self.mutate_once(rng, &mut out, other),
                Mode::InPlace => self.damage_once(rng, &mut out),
            }
        }
        out.truncate(self.max_len);
        out
    }

    /// Random bytes of a random length, for the decoder's reaction to pure noise.
    pub fn noise(&self, rng: &mut DetRng) -> Vec<u8> {
        let len = rng.below(self.max_len.min(512) as u64 + 1) as usize;
        (0..len).map(|_| rng.next_u64() as u8).collect()
    }

    fn mutate_once(&self, rng: &mut DetRng, out: &mut Vec<u8>, other: &[u8]) {
        if out.is_empty() {
            let len = rng.range_inclusive(1, 8) as usize;
            out.extend((0..len).map(|_| rng.next_u64() as u8));
            return;
        }
        let len = out.len();
        let at = rng.below(len as u64) as usize;
        if !self.dictionary.is_empty() && rng.chance(0.25) {
            let word = self.dictionary[rng.below(self.dictionary.len() as u64) as usize].clone();
            if rng.chance(0.5) {
                out.splice(at..at, word);
            } else {
                let end = (at + word.len()).min(len);
                out.splice(at..end, word);
            }
            return;
        }
        match rng.below(14) {
            0 | 1 => out[at] ^= 1 << rng.below(8),
            2 => out[at] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len() as u64) as usize],
            3 => out[at] = rng.next_u64() as u8,
            4 => {
                let n = rng.range_inclusive(1, 8) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                out.splice(at..at, bytes);
            }
            5 => {
                let n = (rng.range_inclusive(1, 16) as usize).min(len - at);
                out.drain(at..at + n);
            }
            6 => out.truncate(at),
            7 => {
                // Copy a chunk somewhere else.
                let n = (rng.range_inclusive(1, 32) as usize).min(len - at);
                let chunk = out[at..at + n].to_vec();
                let to = rng.below(len as u64 + 1) as usize;
                out.splice(to..to, chunk);
            }
            8 => {
                // Repeat a chunk in place: long sequences, deep nesting.
                let n = (rng.range_inclusive(1, 8) as usize).min(len - at);
                let chunk = out[at..at + n].to_vec();
                let times = rng.range_inclusive(2, 64) as usize;
                let room = self.max_len.saturating_sub(len) / n.max(1);
                let repeated: Vec<u8> = chunk.repeat(times.min(room));
                out.splice(at..at, repeated);
            }
            9 => {
                // Splice: our head, the other input's tail.
                if !other.is_empty() {
                    let from = rng.below(other.len() as u64) as usize;
                    out.truncate(at);
                    out.extend_from_slice(&other[from..]);
                }
            }
            10 => inflate_varint(rng, out, at),
            11 => {
                let value = if rng.chance(0.5) {
                    INTERESTING_U32[rng.below(INTERESTING_U32.len() as u64) as usize]
                } else {
                    // Just past what is there: off-by-one territory.
                    (len as u32).wrapping_add(rng.range_inclusive(0, 16) as u32)
                };
                write_at(out, at, &value.to_le_bytes());
            }
            12 => write_at(out, at, &rng.next_u64().to_le_bytes()),
            _ => {
                let other_at = rng.below(len as u64) as usize;
                out.swap(at, other_at);
            }
        }
    }
}

impl Mutator {
    fn damage_once(&self, rng: &mut DetRng, out: &mut Vec<u8>) {
        if out.is_empty() {
            return;
        }
        let len = out.len();
        let at = rng.below(len as u64) as usize;
        match rng.below(8) {
            0 | 1 => out[at] ^= 1 << rng.below(8),
            2 => out[at] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len() as u64) as usize],
            3 => write_at(out, at, &rng.next_u64().to_le_bytes()),
            4 => {
                // A sector or page that never reached the disk reads back as zeros.
                let n = (rng.range_inclusive(1, 4096) as usize).min(len - at);
                out[at..at + n].fill(0);
            }
            5 => out.truncate(at),
            6 => {
                // A torn append: part of a record, or garbage, after the last good one.
                let n = rng.range_inclusive(1, 64) as usize;
                let zeros = rng.chance(0.5);
                out.extend((0..n).map(|_| if zeros { 0 } else { rng.next_u64() as u8 }));
            }
            _ => {
                let value = INTERESTING_U32[rng.below(INTERESTING_U32.len() as u64) as usize];
                write_at(out, at, &value.to_le_bytes());
            }
        }
    }
}

/// Replaces the varint that starts at `at` (LEB128, as postcard and protobuf write lengths)
/// with a huge one, the way a hostile length prefix would look.
fn inflate_varint(rng: &mut DetRng, out: &mut Vec<u8>, at: usize) {
    let end = out[at..].iter().position(|b| b & 0x80 == 0).map_or(out.len(), |i| at + i + 1);
    let value: u64 = match rng.below(4) {
        0 => u64::from(u32::MAX),
        1 => u64::MAX,
        2 => 1 << rng.range_inclusive(20, 40),
        _ => rng.next_u64() >> rng.below(64),
    };
    let mut encoded = Vec::with_capacity(10);
    let mut v = value;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            encoded.push(byte);
            break;
        }
        encoded.push(byte | 0x80);
    }
    out.splice(at..end, encoded);
}

/// Overwrites bytes from `at`, as far as the input reaches.
fn write_at(out: &mut [u8], at: usize, bytes: &[u8]) {
    let n = bytes.len().min(out.len() - at);
    out[at..at + n].copy_from_slice(&bytes[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_mutants() {
        let m = Mutator::new(256);
        let input = b"the quick brown fox".to_vec();
        let run = |seed| {
            let mut rng = DetRng::new(seed);
            (0..50).map(|_| m.mutate(&mut rng, &input, b"other")).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn mutants_respect_the_length_cap_and_change_something() {
        let m = Mutator::new(64);
        let mut rng = DetRng::new(9);
        let input = vec![7u8; 40];
        let mut changed = 0;
        for _ in 0..1000 {
            let out = m.mutate(&mut rng, &input, &[1, 2, 3]);
            assert!(out.len() <= 64);
            changed += usize::from(out != input);
        }
        assert!(changed > 900, "only {changed} of 1000 mutants differ");
    }

    #[test]
    fn in_place_damage_keeps_the_length_but_for_the_tail() {
        let m = Mutator::in_place(1 << 20);
        let mut rng = DetRng::new(5);
        let input = vec![0xaa_u8; 200];
        for _ in 0..2000 {
            let out = m.mutate(&mut rng, &input, &[]);
            // At most twelve appends of at most 64 bytes each; nothing is inserted elsewhere.
            assert!(out.len() <= 200 + 12 * 64, "{} bytes", out.len());
        }
    }

    #[test]
    fn varint_inflation_writes_a_long_prefix() {
        let mut out = vec![0x05, 0xaa];
        let mut rng = DetRng::new(3);
        inflate_varint(&mut rng, &mut out, 0);
        assert!(out.len() > 2, "{out:?}");
        assert_eq!(out.last(), Some(&0xaa));
    }
}
