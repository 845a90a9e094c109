//! Redis Cluster's hash slots: CRC16 (XMODEM) of the key, or of its
//! `{hash tag}`, modulo 16384.

/// How many hash slots a cluster has.
pub const SLOTS: u16 = 16384;

/// The slot `key` belongs to. Only the part inside the first `{...}` is
/// hashed when there is one and it is not empty, so `{user1000}.following`
/// and `{user1000}.followers` share a slot.
///
/// ```
/// use wirestack::resp::cluster::slot;
/// assert_eq!(slot(b"foo"), 12182);
/// assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
/// assert_eq!(slot(b"{}foo"), slot(b"{}foo")); // an empty tag hashes the whole key
/// ```
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// The bytes of `key` that are hashed.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let after = &key[open + 1..];
    match after.iter().position(|&b| b == b'}') {
        Some(0) | None => key,
        Some(close) => &after[..close],
    }
}

/// CRC-16/XMODEM (polynomial 0x1021, initial 0), as Redis computes it.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        let mut crc = crc ^ (u16::from(byte) << 8);
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_reference_check_value() {
        // The check value of CRC-16/XMODEM, and the cluster spec's example.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
    }

    #[test]
    fn hash_tags_follow_the_cluster_spec() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"no tag"), b"no tag");
        assert_eq!(hash_tag(b"open{only"), b"open{only");
        assert!(slot(&[0xff; 64]) < SLOTS);
    }
}
