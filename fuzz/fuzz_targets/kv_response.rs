//! Fuzzes the KV client's response decoder with arbitrary bytes fed in
//! arbitrary pieces.
//!
//! The first byte picks the piece size; the rest is the input. The decoder
//! must never panic and never keep more than the start of one frame
//! within the limits.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use wirestack::kv::{ClientCodec, Limits, RESPONSE_HEADER_LEN};

const LIMITS: Limits = Limits {
    max_key_bytes: 512,
    max_value_bytes: 4096,
};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let max_frame = RESPONSE_HEADER_LEN + LIMITS.max_value_bytes as usize;
    let mut codec = ClientCodec::with_limits(LIMITS);
    let mut buf = BytesMut::new();
    for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(response)) => assert!(response.value.len() <= LIMITS.max_value_bytes as usize),
                Ok(None) => break,
                // A client drops the connection on its first error.
                Err(_) => return,
            }
        }
        // What is left is the start of one frame, which the limits bound.
        assert!(buf.len() < max_frame, "buffered {} bytes", buf.len());
    }
    let _ = codec.decode_eof(&mut buf);
});
