//! RESP's answers to the retry layer: which commands are idempotent, which
//! error replies are refusals.

use super::Value;
use crate::retry::{Idempotent, RetryableResponse};

/// The name of a command (its first argument), if `value` is one.
fn command_name(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Array(args) => match args.first() {
            Some(Value::Bulk(name) | Value::Simple(name)) => Some(name),
            _ => None,
        },
        _ => None,
    }
}

/// Commands that only read: what a cluster client may send to a replica
/// (with [`ClusterConfig::read_from_replicas`](super::cluster::ClusterConfig::read_from_replicas)),
/// and what is always [idempotent](Idempotent). Redis flags each command
/// `readonly` in `COMMAND INFO`; these are the common ones among them.
const READ_ONLY: &[&[u8]] = &[
    b"PING",
    b"ECHO",
    b"GET",
    b"MGET",
    b"EXISTS",
    b"TTL",
    b"PTTL",
    b"EXPIRETIME",
    b"PEXPIRETIME",
    b"TYPE",
    b"STRLEN",
    b"GETRANGE",
    b"SUBSTR",
    b"LCS",
    b"GETBIT",
    b"BITCOUNT",
    b"BITPOS",
    b"HGET",
    b"HMGET",
    b"HGETALL",
    b"HEXISTS",
    b"HLEN",
    b"HKEYS",
    b"HVALS",
    b"HSTRLEN",
    b"HRANDFIELD",
    b"LLEN",
    b"LRANGE",
    b"LINDEX",
    b"LPOS",
    b"SCARD",
    b"SISMEMBER",
    b"SMISMEMBER",
    b"SMEMBERS",
    b"SRANDMEMBER",
    b"SINTER",
    b"SINTERCARD",
    b"SUNION",
    b"SDIFF",
    b"ZSCORE",
    b"ZMSCORE",
    b"ZRANGE",
    b"ZRANGEBYSCORE",
    b"ZRANGEBYLEX",
    b"ZREVRANGE",
    b"ZREVRANGEBYSCORE",
    b"ZREVRANGEBYLEX",
    b"ZRANK",
    b"ZREVRANK",
    b"ZCARD",
    b"ZCOUNT",
    b"ZLEXCOUNT",
    b"XRANGE",
    b"XREVRANGE",
    b"XLEN",
    b"DBSIZE",
];

/// Whether `command` only reads (see [`READ_ONLY`]).
pub(crate) fn is_read_only(command: &Value) -> bool {
    command_name(command).is_some_and(|name| READ_ONLY.iter().any(|known| name.eq_ignore_ascii_case(known)))
}

/// Which Redis commands may be sent again after a lost answer.
///
/// Read-only commands are; so are `SET` (without `NX`, `XX` or `GET`, whose
/// answer would change on a retry), `DEL`/`UNLINK` and the `EXPIRE` family,
/// whose effect is the same applied twice — though `DEL`'s count and a
/// relative TTL restart from the retry. Everything else — `INCR`, `APPEND`,
/// `LPUSH`, `SET ... NX`, transactions, scripts, any command not listed — is
/// not: after a lost answer it fails rather than risk applying twice.
impl Idempotent for Value {
    fn is_idempotent(&self) -> bool {
        let Some(name) = command_name(self) else {
            return false;
        };
        /// Writes whose effect is the same applied twice.
        const IDEMPOTENT_WRITES: &[&[u8]] = &[
            b"DEL",
            b"UNLINK",
            b"EXPIRE",
            b"PEXPIRE",
            b"EXPIREAT",
            b"PEXPIREAT",
            b"PERSIST",
        ];
        if READ_ONLY
            .iter()
            .chain(IDEMPOTENT_WRITES)
            .any(|known| name.eq_ignore_ascii_case(known))
        {
            return true;
        }
        if name.eq_ignore_ascii_case(b"SET") {
            let Value::Array(args) = self else {
                return false;
            };
            return !args.iter().skip(3).any(|arg| match arg {
                Value::Bulk(option) => [&b"NX"[..], b"XX", b"GET"]
                    .iter()
                    .any(|unsafe_option| option.eq_ignore_ascii_case(unsafe_option)),
                _ => true,
            });
        }
        false
    }
}

/// Error replies that mean "not now, nothing was done": `LOADING` (the
/// server is loading its dataset), `BUSY` (a script is running) and
/// `TRYAGAIN` (a multi-key operation during resharding).
impl RetryableResponse for Value {
    fn is_retryable(&self) -> bool {
        let Value::Error(message) = self else {
            return false;
        };
        let code = message.split(|&b| b == b' ').next().unwrap_or_default();
        [&b"LOADING"[..], b"BUSY", b"TRYAGAIN"].contains(&code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_commands() {
        let yes = [
            &["GET", "k"][..],
            &["get", "k"],
            &["SET", "k", "v"],
            &["SET", "k", "v", "EX", "10"],
            &["DEL", "a", "b"],
            &["PEXPIRE", "k", "100"],
            &["PING"],
        ];
        for args in yes {
            assert!(Value::command(args.iter()).is_idempotent(), "{args:?}");
        }
        let no = [
            &["INCR", "k"][..],
            &["SET", "k", "v", "NX"],
            &["set", "k", "v", "get"],
            &["LPUSH", "l", "x"],
            &["EVAL", "return 1", "0"],
            &["UNKNOWN"],
            &[],
        ];
        for args in no {
            assert!(!Value::command(args.iter()).is_idempotent(), "{args:?}");
        }
        assert!(!Value::Integer(1).is_idempotent());
    }

    #[test]
    fn read_only_commands() {
        for args in [
            &["GET", "k"][..],
            &["mget", "a", "b"],
            &["HGETALL", "h"],
            &["ZRANGE", "z", "0", "-1"],
        ] {
            let command = Value::command(args.iter());
            assert!(is_read_only(&command), "{args:?}");
            assert!(command.is_idempotent(), "{args:?}");
        }
        for args in [
            &["SET", "k", "v"][..],
            &["DEL", "k"],
            &["INCR", "k"],
            &["EVAL", "return 1", "0"],
            &[],
        ] {
            assert!(!is_read_only(&Value::command(args.iter())), "{args:?}");
        }
        assert!(!is_read_only(&Value::Integer(1)));
    }

    #[test]
    fn retryable_replies() {
        assert!(Value::error("LOADING Redis is loading the dataset in memory").is_retryable());
        assert!(Value::error("BUSY Redis is busy running a script").is_retryable());
        assert!(Value::error("TRYAGAIN Multiple keys request during rehashing").is_retryable());
        assert!(!Value::error("BUSYKEY Target key name already exists").is_retryable());
        assert!(!Value::error("ERR unknown command").is_retryable());
        assert!(!Value::simple("OK").is_retryable());
        assert!(!Value::Nil.is_retryable());
    }
}
