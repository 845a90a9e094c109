//! [`Value`], one RESP2 value, and the constructors that build commands and
//! replies from ordinary bytes and strings.

use bytes::Bytes;

/// One RESP2 value: a command sent to the server or a reply received from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A simple string, `+OK\r\n`. Must not contain `\r` or `\n`.
    Simple(Bytes),
    /// An error reply, `-ERR unknown command\r\n`. Must not contain `\r` or `\n`.
    Error(Bytes),
    /// A signed 64-bit integer, `:42\r\n`.
    Integer(i64),
    /// A binary-safe bulk string, `$3\r\nfoo\r\n`.
    Bulk(Bytes),
    /// The null value. Encoded as the null bulk string `$-1\r\n`; the null
    /// array `*-1\r\n` also decodes to it.
    Nil,
    /// An array of values, `*2\r\n:1\r\n:2\r\n`.
    Array(Vec<Value>),
}

impl Value {
    /// Builds a command: an array of bulk strings, one per argument.
    ///
    /// ```
    /// use wirestack::resp::Value;
    /// let cmd = Value::command(["GET", "key"]);
    /// assert_eq!(cmd, Value::Array(vec![Value::bulk("GET"), Value::bulk("key")]));
    /// ```
    pub fn command<I, A>(args: I) -> Value
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        Value::Array(
            args.into_iter()
                .map(|arg| Value::Bulk(Bytes::copy_from_slice(arg.as_ref())))
                .collect(),
        )
    }

    /// Builds a [`Value::Bulk`] from anything convertible into [`Bytes`].
    pub fn bulk(data: impl Into<Bytes>) -> Value {
        Value::Bulk(data.into())
    }

    /// Builds a [`Value::Simple`] from anything convertible into [`Bytes`].
    ///
    /// The text is not checked here; encoding fails with
    /// [`RespError::InvalidSimpleString`](super::RespError::InvalidSimpleString) if it contains `\r` or `\n`.
    pub fn simple(text: impl Into<Bytes>) -> Value {
        Value::Simple(text.into())
    }

    /// Builds a [`Value::Error`] from anything convertible into [`Bytes`].
    ///
    /// The text is not checked here; encoding fails with
    /// [`RespError::InvalidSimpleString`](super::RespError::InvalidSimpleString) if it contains `\r` or `\n`.
    pub fn error(text: impl Into<Bytes>) -> Value {
        Value::Error(text.into())
    }
}
