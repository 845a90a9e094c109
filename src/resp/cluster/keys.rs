//! Where a command's keys are: what the router places a command by, and
//! what Redis Cluster hashes to a slot.

use crate::resp::Value;

/// Which arguments of a command are keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// None: `PING`, `INFO`, `CLUSTER ...`, ...
    Keyless,
    /// The first argument (most commands, and any command not listed).
    First,
    /// Every argument: `DEL a b c`, `MGET a b`, ...
    All,
    /// The first two: `RENAME a b`, `LMOVE a b LEFT RIGHT`, ...
    FirstTwo,
    /// Every other one from the first: `MSET k v k v`.
    Pairs,
    /// `numkeys` keys after the second argument: `EVAL script 2 a b args...`.
    NumKeys,
    /// All but the last (a timeout): `BLPOP a b 5`.
    AllButLast,
}

fn spec(name: &[u8]) -> Spec {
    const KEYLESS: &[&str] = &[
        "PING",
        "ECHO",
        "INFO",
        "DBSIZE",
        "CLUSTER",
        "AUTH",
        "HELLO",
        "SELECT",
        "ASKING",
        "READONLY",
        "READWRITE",
        "FLUSHALL",
        "FLUSHDB",
        "CONFIG",
        "CLIENT",
        "COMMAND",
        "SCRIPT",
        "FUNCTION",
        "TIME",
        "MULTI",
        "EXEC",
        "DISCARD",
        "QUIT",
        "SCAN",
        "KEYS",
        "RANDOMKEY",
        "WAIT",
        "LASTSAVE",
        "SAVE",
        "BGSAVE",
        "PUBLISH",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "ROLE",
        "MEMORY",
        "SLOWLOG",
        "LATENCY",
        "DEBUG",
        "SHUTDOWN",
        "MONITOR",
        "REPLICAOF",
        "SLAVEOF",
        "FAILOVER",
    ];
    const ALL: &[&str] = &[
        "DEL",
        "UNLINK",
        "EXISTS",
        "MGET",
        "TOUCH",
        "WATCH",
        "SINTER",
        "SUNION",
        "SDIFF",
        "SINTERSTORE",
        "SUNIONSTORE",
        "SDIFFSTORE",
        "PFCOUNT",
        "PFMERGE",
    ];
    const FIRST_TWO: &[&str] = &[
        "RENAME",
        "RENAMENX",
        "RPOPLPUSH",
        "BRPOPLPUSH",
        "SMOVE",
        "LMOVE",
        "BLMOVE",
        "COPY",
    ];
    const PAIRS: &[&str] = &["MSET", "MSETNX"];
    const NUM_KEYS: &[&str] = &["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"];
    const ALL_BUT_LAST: &[&str] = &["BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"];
    let is = |list: &[&str]| {
        list.iter()
            .any(|known| name.eq_ignore_ascii_case(known.as_bytes()))
    };
    if is(KEYLESS) {
        Spec::Keyless
    } else if is(ALL) {
        Spec::All
    } else if is(FIRST_TWO) {
        Spec::FirstTwo
    } else if is(PAIRS) {
        Spec::Pairs
    } else if is(NUM_KEYS) {
        Spec::NumKeys
    } else if is(ALL_BUT_LAST) {
        Spec::AllButLast
    } else {
        Spec::First
    }
}

/// The argument bytes of a command's element, if it is a string.
fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Bulk(bytes) | Value::Simple(bytes) => Some(bytes),
        _ => None,
    }
}

/// The keys of `command`, in order (none for a value that is not a
/// command, or a keyless command).
pub(crate) fn keys(command: &Value) -> impl Iterator<Item = &[u8]> {
    let args: &[Value] = match command {
        Value::Array(args) => args,
        _ => &[],
    };
    let spec = args.first().and_then(bytes).map_or(Spec::Keyless, spec);
    let rest = args.get(1..).unwrap_or_default();
    let (range, step) = match spec {
        Spec::Keyless => (0..0, 1),
        Spec::First => (0..rest.len().min(1), 1),
        Spec::All => (0..rest.len(), 1),
        Spec::FirstTwo => (0..rest.len().min(2), 1),
        Spec::Pairs => (0..rest.len(), 2),
        Spec::AllButLast => (0..rest.len().saturating_sub(1), 1),
        Spec::NumKeys => {
            let count = rest
                .get(1)
                .and_then(bytes)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            (2..rest.len().min(count.saturating_add(2)), 1)
        }
    };
    range
        .step_by(step)
        .filter_map(move |index| rest.get(index).and_then(bytes))
}

/// A command is placed by its first key; `PING` and other keyless
/// commands go to any server.
impl crate::route::RouteKey for Value {
    fn route_key(&self) -> Option<&[u8]> {
        keys(self).next()
    }
}

/// A server is probed with `PING`.
impl crate::route::Probe for Value {
    fn probe() -> Self {
        Value::command(["PING"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(args: &[&str]) -> Vec<String> {
        keys(&Value::command(args))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn keys_are_found_where_each_command_has_them() {
        assert_eq!(keys_of(&["GET", "a"]), ["a"]);
        assert_eq!(keys_of(&["set", "a", "1", "EX", "5"]), ["a"]);
        assert_eq!(keys_of(&["DEL", "a", "b", "c"]), ["a", "b", "c"]);
        assert_eq!(keys_of(&["MSET", "a", "1", "b", "2"]), ["a", "b"]);
        assert_eq!(keys_of(&["RENAME", "a", "b"]), ["a", "b"]);
        assert_eq!(keys_of(&["EVAL", "return 1", "2", "a", "b", "arg"]), ["a", "b"]);
        assert_eq!(keys_of(&["EVAL", "return 1", "9", "a"]), ["a"]);
        assert_eq!(keys_of(&["EVAL", "return 1", "x", "a"]), Vec::<String>::new());
        assert_eq!(keys_of(&["BLPOP", "a", "b", "5"]), ["a", "b"]);
        assert_eq!(keys_of(&["PING"]), Vec::<String>::new());
        assert_eq!(keys_of(&["CLUSTER", "SLOTS"]), Vec::<String>::new());
        assert_eq!(keys_of(&["GET"]), Vec::<String>::new());
        assert_eq!(keys(&Value::Integer(3)).count(), 0);
    }
}
