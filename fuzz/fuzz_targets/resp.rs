//! Fuzzes the RESP2 decoder with arbitrary bytes fed in arbitrary pieces.
//!
//! The first byte picks the piece size; the rest is the input. The decoder
//! must never panic, and whatever it decodes must encode back to bytes it
//! decodes to the same value.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};
use wirestack::resp::RespCodec;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let mut codec = RespCodec::new()
        .with_max_bulk_len(4096)
        .with_max_array_len(256)
        .with_max_depth(8)
        .with_max_line_len(1024);
    let mut buf = BytesMut::new();
    for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(value)) => {
                    let mut encoded = BytesMut::new();
                    codec
                        .encode(value.clone(), &mut encoded)
                        .expect("a decoded value encodes");
                    let again = codec.decode(&mut encoded).expect("its encoding decodes");
                    assert_eq!(again, Some(value));
                    assert!(encoded.is_empty());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
