//! [`Request`]: the meta commands a client sends, and how each is written.

use super::Key;
use bytes::{BufMut, Bytes, BytesMut};

/// How `ms` stores a value (its `M` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SetMode {
    /// Store it whatever is there (`MS`, the default).
    #[default]
    Set,
    /// Store it only if the key does not exist (`ME`, memcached's `add`).
    Add,
    /// Store it only if the key exists (`MR`, `replace`).
    Replace,
    /// Append it to the existing value (`MA`).
    Append,
    /// Prepend it to the existing value (`MP`).
    Prepend,
}

impl SetMode {
    /// The `M` flag's token, or `None` for the default.
    fn token(self) -> Option<u8> {
        match self {
            SetMode::Set => None,
            SetMode::Add => Some(b'E'),
            SetMode::Replace => Some(b'R'),
            SetMode::Append => Some(b'A'),
            SetMode::Prepend => Some(b'P'),
        }
    }
}

/// One meta command.
///
/// The codec adds the opaque token (`O`) that checks the answer belongs to
/// it (see [`MemcacheCodec`](super::MemcacheCodec)); TTLs are in memcached's
/// terms: seconds, 0 for never, more than 30 days an absolute Unix time
/// ([`MemcacheClient`](super::MemcacheClient) converts a `Duration`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// `mg <key> v`: the value alone.
    Get {
        /// The key.
        key: Key,
    },
    /// `mg <key> v f c`: the value, its client flags and its CAS token.
    GetItem {
        /// The key.
        key: Key,
    },
    /// `get <key> <key>...`: memcached's text-protocol multi-key get, one
    /// request and one answer for many keys ([`Status::Values`](super::Status::Values)).
    /// Plain keys only, on one server: over a sharded client it goes where
    /// its first key goes (use a batch of [`Get`](Request::Get)s there).
    GetMulti {
        /// The keys, at least one, all plain.
        keys: Vec<Key>,
    },
    /// `mg <key> T<ttl>`: sets the key's TTL, answers whether it exists.
    Touch {
        /// The key.
        key: Key,
        /// The new TTL.
        ttl: u32,
    },
    /// `ms <key> <len> T<ttl> F<flags> [C<cas>] [M<mode>]`, then the value.
    Set {
        /// The key.
        key: Key,
        /// The value, any bytes.
        value: Bytes,
        /// The TTL.
        ttl: u32,
        /// The client flags stored with the value.
        flags: u32,
        /// Store only if the item's CAS token is still this one.
        cas: Option<u64>,
        /// How to store it.
        mode: SetMode,
    },
    /// `md <key> [C<cas>]`.
    Delete {
        /// The key.
        key: Key,
        /// Delete only if the item's CAS token is still this one.
        cas: Option<u64>,
    },
    /// `ma <key> v D<delta> [MD]`: adds to (or subtracts from) a decimal
    /// value, answers the new one. A decrement stops at 0; an increment
    /// wraps at 2^64.
    Arithmetic {
        /// The key.
        key: Key,
        /// How much to add or subtract.
        delta: u64,
        /// Subtract instead of add.
        decrement: bool,
    },
    /// `mn`: answered with `MN`; checks that the server answers.
    NoOp,
}

impl Request {
    /// The key this request is about, if it has one.
    pub fn key(&self) -> Option<&Key> {
        match self {
            Request::Get { key }
            | Request::GetItem { key }
            | Request::Touch { key, .. }
            | Request::Set { key, .. }
            | Request::Delete { key, .. }
            | Request::Arithmetic { key, .. } => Some(key),
            Request::GetMulti { keys } => keys.first(),
            Request::NoOp => None,
        }
    }

    /// Its command name, for errors and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Get { .. } => "mg",
            Request::GetItem { .. } => "mg f c",
            Request::GetMulti { .. } => "get",
            Request::Touch { .. } => "mg T",
            Request::Set { .. } => "ms",
            Request::Delete { .. } => "md",
            Request::Arithmetic { .. } => "ma",
            Request::NoOp => "mn",
        }
    }

    /// Writes this command with opaque token `opaque` (none for `mn` and
    /// the multi-key `get`, which has no flags).
    pub(super) fn write(&self, opaque: Option<u32>, dst: &mut BytesMut) {
        match self {
            Request::Get { key } => {
                command(dst, b"mg", key);
                base64_flag(dst, key);
                dst.put_slice(b" v");
            }
            Request::GetItem { key } => {
                command(dst, b"mg", key);
                base64_flag(dst, key);
                dst.put_slice(b" v f c");
            }
            Request::Touch { key, ttl } => {
                command(dst, b"mg", key);
                base64_flag(dst, key);
                flag(dst, b'T', *ttl);
            }
            Request::Set {
                key,
                value,
                ttl,
                flags,
                cas,
                mode,
            } => {
                dst.reserve(value.len() + 64);
                command(dst, b"ms", key);
                // The length comes right after the key, before any flag.
                dst.put_u8(b' ');
                number(dst, value.len());
                base64_flag(dst, key);
                flag(dst, b'T', *ttl);
                flag(dst, b'F', *flags);
                if let Some(cas) = cas {
                    flag(dst, b'C', *cas);
                }
                if let Some(mode) = mode.token() {
                    dst.put_slice(&[b' ', b'M', mode]);
                }
            }
            Request::Delete { key, cas } => {
                command(dst, b"md", key);
                base64_flag(dst, key);
                if let Some(cas) = cas {
                    flag(dst, b'C', *cas);
                }
            }
            Request::Arithmetic {
                key,
                delta,
                decrement,
            } => {
                command(dst, b"ma", key);
                base64_flag(dst, key);
                dst.put_slice(b" v");
                flag(dst, b'D', *delta);
                if *decrement {
                    dst.put_slice(b" MD");
                }
            }
            Request::GetMulti { keys } => {
                dst.reserve(3 + keys.iter().map(|key| key.wire().len() + 1).sum::<usize>() + 2);
                dst.put_slice(b"get");
                for key in keys {
                    dst.put_u8(b' ');
                    dst.put_slice(key.wire());
                }
            }
            Request::NoOp => dst.put_slice(b"mn"),
        }
        if let Some(opaque) = opaque {
            flag(dst, b'O', opaque);
        }
        dst.put_slice(b"\r\n");
        if let Request::Set { value, .. } = self {
            dst.put_slice(value);
            dst.put_slice(b"\r\n");
        }
    }
}

/// `<name> <key>`.
fn command(dst: &mut BytesMut, name: &[u8], key: &Key) {
    dst.reserve(name.len() + key.wire().len() + 48);
    dst.put_slice(name);
    dst.put_u8(b' ');
    dst.put_slice(key.wire());
}

/// ` b` if the key is base64.
fn base64_flag(dst: &mut BytesMut, key: &Key) {
    if key.is_base64() {
        dst.put_slice(b" b");
    }
}

/// ` <letter><value>`.
fn flag(dst: &mut BytesMut, letter: u8, value: impl Into<u64>) {
    dst.put_u8(b' ');
    dst.put_u8(letter);
    number(dst, value.into());
}

/// A decimal number, without allocating.
fn number(dst: &mut BytesMut, value: impl TryInto<u64>) {
    let mut value: u64 = value.try_into().unwrap_or(u64::MAX);
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    dst.put_slice(&digits[at..]);
}
