//! [`Key`]: a memcached key as it goes on the wire — as written when it is
//! plain, base64-encoded (the meta protocol's `b` flag) when it is not.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;

/// The longest key memcached accepts, in bytes on the wire.
pub const MAX_KEY_LEN: usize = 250;

/// The longest key that needs base64: its encoding must fit in
/// [`MAX_KEY_LEN`] (4 bytes for every 3).
pub const MAX_BINARY_KEY_LEN: usize = MAX_KEY_LEN / 4 * 3;

/// A key the client cannot send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// memcached has no empty key.
    #[error("empty key")]
    Empty,
    /// The key is longer than memcached accepts: 250 bytes, or
    /// [`MAX_BINARY_KEY_LEN`] for a key that must go base64-encoded.
    #[error("key of {len} bytes is longer than the limit of {limit}")]
    TooLong {
        /// The key's length.
        len: usize,
        /// The limit that applied to it.
        limit: usize,
    },
}

/// A memcached key, ready for the wire.
///
/// A key of printable ASCII without spaces (`0x21..=0x7e`) goes as it is;
/// any other key (spaces, control bytes, UTF-8, binary) goes base64-encoded
/// with the `b` flag, which memcached decodes and stores as the raw bytes —
/// so other clients see the key the caller gave. Routing (ketama) hashes the
/// raw bytes, as other clients do.
///
/// ```
/// use wirestack::memcache::Key;
///
/// let plain = Key::new("user:42")?;
/// assert_eq!(plain.wire(), b"user:42");
/// assert!(!plain.is_base64());
///
/// let spaced = Key::new("hello world")?;
/// assert_eq!(spaced.wire(), b"aGVsbG8gd29ybGQ=");
/// assert!(spaced.is_base64());
/// assert_eq!(spaced.raw(), b"hello world");
/// # Ok::<(), wirestack::memcache::KeyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    raw: Bytes,
    /// The base64 encoding of `raw`, when it is not plain.
    encoded: Option<Bytes>,
}

impl Key {
    /// Checks `key` and encodes it if it is not plain.
    pub fn new(key: impl Into<Bytes>) -> Result<Key, KeyError> {
        let raw = key.into();
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
            if raw.len() > MAX_KEY_LEN {
                return Err(KeyError::TooLong {
                    len: raw.len(),
                    limit: MAX_KEY_LEN,
                });
            }
            return Ok(Key { raw, encoded: None });
        }
        if raw.len() > MAX_BINARY_KEY_LEN {
            return Err(KeyError::TooLong {
                len: raw.len(),
                limit: MAX_BINARY_KEY_LEN,
            });
        }
        let encoded = Bytes::from(STANDARD.encode(&raw));
        Ok(Key {
            raw,
            encoded: Some(encoded),
        })
    }

    /// The key as the caller gave it.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The key as it goes on the wire.
    pub fn wire(&self) -> &[u8] {
        self.encoded.as_deref().unwrap_or(&self.raw)
    }

    /// `true` if the key goes base64-encoded (with the `b` flag).
    pub fn is_base64(&self) -> bool {
        self.encoded.is_some()
    }
}

impl TryFrom<&str> for Key {
    type Error = KeyError;

    fn try_from(key: &str) -> Result<Key, KeyError> {
        Key::new(Bytes::copy_from_slice(key.as_bytes()))
    }
}

impl TryFrom<&[u8]> for Key {
    type Error = KeyError;

    fn try_from(key: &[u8]) -> Result<Key, KeyError> {
        Key::new(Bytes::copy_from_slice(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_go_as_they_are_and_others_in_base64() {
        assert_eq!(Key::new("a").unwrap().wire(), b"a");
        let binary = Key::new(&b"\x00\xff\r\n"[..]).unwrap();
        assert!(binary.is_base64());
        assert_eq!(binary.wire(), b"AP8NCg==");
        assert_eq!(binary.raw(), b"\x00\xff\r\n");
        assert!(Key::new("ключ").unwrap().is_base64());
        assert!(Key::new("tab\there").unwrap().is_base64());
    }

    #[test]
    fn lengths_are_checked_against_what_memcached_accepts() {
        assert_eq!(Key::new(""), Err(KeyError::Empty));
        assert!(Key::new("k".repeat(MAX_KEY_LEN)).is_ok());
        assert_eq!(
            Key::new("k".repeat(MAX_KEY_LEN + 1)),
            Err(KeyError::TooLong { len: 251, limit: 250 })
        );
        let longest = Key::new(" ".repeat(MAX_BINARY_KEY_LEN)).unwrap();
        assert!(longest.wire().len() <= MAX_KEY_LEN);
        assert_eq!(
            Key::new(" ".repeat(MAX_BINARY_KEY_LEN + 1)),
            Err(KeyError::TooLong { len: 187, limit: 186 })
        );
    }
}
