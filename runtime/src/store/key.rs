//! Keys with a stable byte order: the encoded bytes sort as the values do, so range scans over
//! a keyspace follow the natural order of its keys.
//!
//! - unsigned integers: big-endian;
//! - signed integers: big-endian with the sign bit flipped;
//! - strings and byte strings: escaped (`00` becomes `00 ff`) and terminated by `00 00`, so
//!   that a string is never a prefix-ambiguous part of a longer composite key;
//! - tuples: their parts concatenated.
//!
//! ```
//! use troupe_runtime::store::key::Key;
//!
//! let a = ("user", 7u64).to_key();
//! let b = ("user", 300u64).to_key();
//! assert!(a < b);
//! assert!(("user",).to_key() < ("users",).to_key());
//! ```

/// A value that can be a key (or part of one).
pub trait Key {
    /// Appends the encoding to `out`.
    fn write_key(&self, out: &mut Vec<u8>);

    /// The encoding.
    fn to_key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_key(&mut out);
        out
    }
}

impl Key for u64 {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl Key for u32 {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

impl Key for i64 {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&((*self as u64) ^ (1 << 63)).to_be_bytes());
    }
}

impl Key for [u8] {
    fn write_key(&self, out: &mut Vec<u8>) {
        for b in self {
            out.push(*b);
            if *b == 0 {
                out.push(0xff);
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
}

impl Key for str {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.as_bytes().write_key(out);
    }
}

impl Key for String {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.as_str().write_key(out);
    }
}

impl<T: Key + ?Sized> Key for &T {
    fn write_key(&self, out: &mut Vec<u8>) {
        (**self).write_key(out);
    }
}

impl<A: Key> Key for (A,) {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.0.write_key(out);
    }
}

impl<A: Key, B: Key> Key for (A, B) {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.0.write_key(out);
        self.1.write_key(out);
    }
}

impl<A: Key, B: Key, C: Key> Key for (A, B, C) {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.0.write_key(out);
        self.1.write_key(out);
        self.2.write_key(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::mix;

    fn sorted_by_key<T: Key + Clone>(mut values: Vec<T>) -> Vec<T> {
        values.sort_by_key(|v| v.to_key());
        values
    }

    #[test]
    fn integers_sort_as_numbers() {
        let mut state = 1u64;
        let mut next = || {
            state = mix(state);
            state
        };
        let mut unsigned: Vec<u64> = (0..500).map(|_| next()).collect();
        unsigned.extend([0, 1, 255, 256, u64::MAX]);
        let mut expected = unsigned.clone();
        expected.sort_unstable();
        assert_eq!(sorted_by_key(unsigned), expected);

        let mut signed: Vec<i64> = (0..500).map(|_| next() as i64).collect();
        signed.extend([i64::MIN, -1, 0, 1, i64::MAX]);
        let mut expected = signed.clone();
        expected.sort_unstable();
        assert_eq!(sorted_by_key(signed), expected);
    }

    #[test]
    fn strings_and_composites_sort_as_values() {
        let words = vec!["", "a", "a\0", "a\0b", "ab", "b", "\0", "zz", "a\u{1F600}"];
        let mut expected = words.clone();
        expected.sort_unstable();
        assert_eq!(sorted_by_key(words.clone()), expected);

        let mut pairs = Vec::new();
        for w in &words {
            for n in [0u64, 1, 1000] {
                pairs.push((*w, n));
            }
        }
        let mut expected = pairs.clone();
        expected.sort_unstable();
        assert_eq!(sorted_by_key(pairs), expected);
        // A string part cannot run into the next part: ("a", 0) and ("a\0", ...) stay apart.
        assert!(("a", u64::MAX).to_key() < ("a\0", 0u64).to_key());
    }
}
