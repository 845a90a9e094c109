//! [`RespCodec`]: the RESP2 codec type and the limits it decodes with.
//!
//! Its [`Decoder`](tokio_util::codec::Decoder) is in `decode`, its
//! [`Encoder`](tokio_util::codec::Encoder) in `encode`.

mod decode;
mod encode;
#[cfg(test)]
mod tests;

/// Default for [`RespCodec::max_bulk_len`]: 16 MiB.
const DEFAULT_MAX_BULK_LEN: usize = 16 * 1024 * 1024;
/// Default for [`RespCodec::max_array_len`]: 1,048,576 elements.
const DEFAULT_MAX_ARRAY_LEN: usize = 1024 * 1024;
/// Default for [`RespCodec::max_depth`]: 32 nested arrays.
const DEFAULT_MAX_DEPTH: usize = 32;
/// Default for [`RespCodec::max_line_len`]: 64 KiB.
const DEFAULT_MAX_LINE_LEN: usize = 64 * 1024;

/// A RESP2 [`Encoder`](tokio_util::codec::Encoder) and
/// [`Decoder`](tokio_util::codec::Decoder) with limits on what a peer may send.
///
/// The limits apply to decoding only; encoding trusts the caller's values.
///
/// ```
/// use wirestack::resp::RespCodec;
/// let codec = RespCodec::new().with_max_bulk_len(1024).with_max_depth(4);
/// assert_eq!(codec.max_bulk_len(), 1024);
/// assert_eq!(codec.max_depth(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct RespCodec {
    max_bulk_len: usize,
    max_array_len: usize,
    max_depth: usize,
    max_line_len: usize,
}

impl Default for RespCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl RespCodec {
    /// A codec with the default limits: bulk strings up to 16 MiB, arrays up
    /// to 1,048,576 elements, 32 levels of nesting, lines up to 64 KiB.
    pub fn new() -> Self {
        RespCodec {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_array_len: DEFAULT_MAX_ARRAY_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            max_line_len: DEFAULT_MAX_LINE_LEN,
        }
    }

    /// Sets the largest bulk string payload, in bytes, the decoder accepts.
    pub fn with_max_bulk_len(mut self, n: usize) -> Self {
        self.max_bulk_len = n;
        self
    }

    /// Sets the largest number of elements in one array the decoder accepts.
    pub fn with_max_array_len(mut self, n: usize) -> Self {
        self.max_array_len = n;
        self
    }

    /// Sets how many arrays may be nested in one another. A flat array has
    /// depth 1; `0` rejects every (non-null) array.
    pub fn with_max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }

    /// Sets the longest content, in bytes and without the type byte and the
    /// `\r\n`, of a simple string or error line the decoder accepts.
    pub fn with_max_line_len(mut self, n: usize) -> Self {
        self.max_line_len = n;
        self
    }

    /// The largest bulk string payload the decoder accepts, in bytes.
    pub fn max_bulk_len(&self) -> usize {
        self.max_bulk_len
    }

    /// The largest number of elements in one array the decoder accepts.
    pub fn max_array_len(&self) -> usize {
        self.max_array_len
    }

    /// How many arrays may be nested in one another.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// The longest simple string or error line content the decoder accepts.
    pub fn max_line_len(&self) -> usize {
        self.max_line_len
    }
}
