//! Fuzzes the KV server's request decoder with arbitrary bytes fed in
//! arbitrary pieces, as a socket would deliver them.
//!
//! The first byte picks the piece size; the rest is the input. The decoder
//! must never panic, must stop for good once it reports lost framing, and
//! must never keep more than the start of one frame within the limits.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use wirestack::kv::{Limits, ServerCodec, REQUEST_HEADER_LEN, TTL_LEN};

const LIMITS: Limits = Limits {
    max_key_bytes: 512,
    max_value_bytes: 4096,
};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let max_frame =
        REQUEST_HEADER_LEN + LIMITS.max_key_bytes as usize + LIMITS.max_value_bytes as usize + TTL_LEN;
    let mut codec = ServerCodec::with_limits(LIMITS);
    let mut buf = BytesMut::new();
    'feed: for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    assert!(codec.decode(&mut buf).is_err(), "decoded after losing framing");
                    break 'feed;
                }
            }
        }
        // What is left is the start of one frame, which the limits bound.
        assert!(buf.len() < max_frame, "buffered {} bytes", buf.len());
    }
    let _ = codec.decode_eof(&mut buf);
});
