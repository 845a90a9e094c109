//! [`SlotMap`]: which primary serves each hash slot, and its replicas,
//! from a `CLUSTER SLOTS` reply.

use super::error::ClusterError;
use super::slot::SLOTS;
use crate::resp::Value;

/// Which node serves each of the 16384 slots: an index into the node list.
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    /// The node index for each slot, or `NONE`.
    slots: Box<[u16]>,
    /// The primaries' addresses (`ip:port`), each once.
    nodes: Vec<String>,
    /// The replicas of each primary, by its index in `nodes`.
    replicas: Vec<Vec<String>>,
}

const NONE: u16 = u16::MAX;

impl SlotMap {
    /// Parses a `CLUSTER SLOTS` reply; `asked` is the address it came from
    /// (a node that announces no IP is reached at `asked`'s host).
    pub(crate) fn parse(reply: &Value, asked: &str) -> Result<SlotMap, ClusterError> {
        let bad = |what: &str| ClusterError::BadSlotMap(what.to_string());
        let Value::Array(ranges) = reply else {
            return Err(match reply {
                Value::Error(message) => {
                    ClusterError::BadSlotMap(String::from_utf8_lossy(message).into_owned())
                }
                _ => bad("not an array"),
            });
        };
        let mut map = SlotMap {
            slots: vec![NONE; usize::from(SLOTS)].into_boxed_slice(),
            nodes: Vec::new(),
            replicas: Vec::new(),
        };
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err(bad("a range is not an array"));
            };
            let (start, end) = match (fields.first(), fields.get(1)) {
                (Some(&Value::Integer(start)), Some(&Value::Integer(end))) => (start, end),
                _ => return Err(bad("a range does not start with two integers")),
            };
            if !(0..i64::from(SLOTS)).contains(&start) || !(start..i64::from(SLOTS)).contains(&end) {
                return Err(ClusterError::BadSlotMap(format!("slot range {start}-{end}")));
            }
            let primary = fields
                .get(2)
                .ok_or_else(|| bad("a range has no primary"))
                .and_then(|node| address(node, asked))?;
            let replicas = fields
                .get(3..)
                .unwrap_or_default()
                .iter()
                .map(|node| address(node, asked))
                .collect::<Result<Vec<_>, _>>()?;
            let index = match map.nodes.iter().position(|known| *known == primary) {
                Some(index) => index,
                None => {
                    map.nodes.push(primary);
                    map.replicas.push(Vec::new());
                    map.nodes.len() - 1
                }
            };
            if let Some(known) = map.replicas.get_mut(index) {
                for replica in replicas {
                    if !known.contains(&replica) {
                        known.push(replica);
                    }
                }
            }
            let index = u16::try_from(index).map_err(|_| bad("more nodes than slots"))?;
            // Both bounds were checked to lie within 0..16384.
            for slot in start as usize..=end as usize {
                map.slots[slot] = index;
            }
        }
        Ok(map)
    }

    /// The address of the primary that serves `slot`.
    pub(crate) fn primary(&self, slot: u16) -> Option<&str> {
        let index = *self.slots.get(usize::from(slot))?;
        self.nodes.get(usize::from(index)).map(String::as_str)
    }

    /// The addresses of the replicas of the primary that serves `slot`
    /// (none if it has none, or the slot is not served).
    pub(crate) fn replicas(&self, slot: u16) -> &[String] {
        self.slots
            .get(usize::from(slot))
            .and_then(|&index| self.replicas.get(usize::from(index)))
            .map_or(&[], Vec::as_slice)
    }

    /// Records that `slot` is served by `addr` now (after a `MOVED`); its
    /// replicas are unknown until the next load.
    pub(crate) fn moved(&mut self, slot: u16, addr: &str) {
        let index = match self.nodes.iter().position(|known| known == addr) {
            Some(index) => index,
            None => {
                self.nodes.push(addr.to_string());
                self.replicas.push(Vec::new());
                self.nodes.len() - 1
            }
        };
        if let (Some(entry), Ok(index)) = (self.slots.get_mut(usize::from(slot)), u16::try_from(index)) {
            *entry = index;
        }
    }

    /// Every replica's address.
    pub(crate) fn all_replicas(&self) -> impl Iterator<Item = &String> {
        self.replicas.iter().flatten()
    }

    /// Every primary's address.
    pub(crate) fn nodes(&self) -> &[String] {
        &self.nodes
    }
}

/// `ip:port` of a node entry `[ip, port, id, ...]`.
fn address(node: &Value, asked: &str) -> Result<String, ClusterError> {
    let bad = |what: &str| ClusterError::BadSlotMap(what.to_string());
    let Value::Array(fields) = node else {
        return Err(bad("a node is not an array"));
    };
    let ip = match fields.first() {
        Some(Value::Bulk(ip) | Value::Simple(ip)) => {
            std::str::from_utf8(ip).map_err(|_| bad("a node's IP is not UTF-8"))?
        }
        _ => return Err(bad("a node has no IP")),
    };
    let port = match fields.get(1) {
        Some(&Value::Integer(port)) => {
            u16::try_from(port).map_err(|_| bad("a node's port is out of range"))?
        }
        _ => return Err(bad("a node has no port")),
    };
    let ip = if ip.is_empty() || ip == "?" {
        asked.rsplit_once(':').map_or(asked, |(host, _)| host)
    } else {
        ip
    };
    Ok(if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ip: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::bulk(ip.to_string()),
            Value::Integer(port),
            Value::bulk("id"),
        ])
    }

    fn range(start: i64, end: i64, nodes: Vec<Value>) -> Value {
        let mut fields = vec![Value::Integer(start), Value::Integer(end)];
        fields.extend(nodes);
        Value::Array(fields)
    }

    #[test]
    fn a_reply_maps_every_slot_to_its_primary() {
        let reply = Value::Array(vec![
            range(0, 5460, vec![node("127.0.0.1", 7000), node("127.0.0.1", 7003)]),
            range(5461, 10922, vec![node("127.0.0.1", 7001)]),
            range(10923, 16383, vec![node("", 7002)]),
        ]);
        let map = SlotMap::parse(&reply, "127.0.0.1:7000").unwrap();
        assert_eq!(map.primary(0), Some("127.0.0.1:7000"));
        assert_eq!(map.primary(5461), Some("127.0.0.1:7001"));
        assert_eq!(
            map.primary(16383),
            Some("127.0.0.1:7002"),
            "no IP: the host asked"
        );
        assert_eq!(map.nodes().len(), 3);
        assert_eq!(map.replicas(0), ["127.0.0.1:7003"]);
        assert!(map.replicas(5461).is_empty());
        let mut map = map;
        map.moved(0, "127.0.0.1:7005");
        assert_eq!(map.primary(0), Some("127.0.0.1:7005"));
        assert_eq!(map.primary(1), Some("127.0.0.1:7000"));
        assert!(
            map.replicas(0).is_empty(),
            "a new primary's replicas are not known yet"
        );
        assert_eq!(map.replicas(1), ["127.0.0.1:7003"]);
    }

    #[test]
    fn uncovered_slots_have_no_primary() {
        let reply = Value::Array(vec![range(0, 100, vec![node("10.0.0.1", 7000)])]);
        let map = SlotMap::parse(&reply, "10.0.0.1:7000").unwrap();
        assert_eq!(map.primary(101), None);
    }

    #[test]
    fn malformed_replies_are_typed_errors() {
        let bad = [
            Value::Integer(1),
            Value::error("ERR This instance has cluster support disabled"),
            Value::Array(vec![Value::Integer(1)]),
            Value::Array(vec![range(0, 16384, vec![node("a", 1)])]),
            Value::Array(vec![range(10, 5, vec![node("a", 1)])]),
            Value::Array(vec![range(-1, 5, vec![node("a", 1)])]),
            Value::Array(vec![range(0, 5, vec![])]),
            Value::Array(vec![range(0, 5, vec![node("a", 70_000)])]),
            Value::Array(vec![range(0, 5, vec![Value::Array(vec![Value::Integer(1)])])]),
            Value::Array(vec![range(
                0,
                5,
                vec![Value::Array(vec![Value::bulk(vec![0xff]), Value::Integer(1)])],
            )]),
        ];
        for reply in bad {
            assert!(
                matches!(SlotMap::parse(&reply, "x:1"), Err(ClusterError::BadSlotMap(_))),
                "{reply:?}"
            );
        }
    }
}
