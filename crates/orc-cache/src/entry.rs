//! What every backend stores by: the key's hash, and what a namespace holds.

/// The hash a key is stored under (file name, Redis key suffix, memory key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key([u8; 32]);

/// A BLAKE3 digest is uniform already: a map needs only its first eight bytes (mixed with the
/// map's seed by its hasher); equality still compares all 32.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        state.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
    }
}

impl Key {
    pub(crate) fn of(key: &[u8]) -> Key {
        Key(*blake3::hash(key).as_bytes())
    }

    /// The hash in lowercase hex (64 characters).
    pub(crate) fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

/// What a backend holds for one namespace now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Entries that have not expired.
    pub entries: u64,
    /// Bytes they take as stored (after compression, with the entry headers): value lengths for
    /// memory and Redis, file sizes for the file backend.
    pub bytes: u64,
}
