//! The error replies a cluster answers instead of a result: `MOVED`, `ASK`,
//! and the ones that mean "try again soon".

use crate::resp::Value;

/// What an error reply asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redirect {
    /// `MOVED slot addr`: the slot lives at `addr` now; update the map.
    Moved { slot: u16, addr: String },
    /// `ASK slot addr`: this once, send to `addr` after `ASKING`.
    Ask { addr: String },
    /// `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`: nothing was done; try again
    /// after a pause (and, for `CLUSTERDOWN`, a fresh map).
    Retry,
}

impl Redirect {
    /// The redirect an error reply asks for, if it is one.
    pub(crate) fn of(reply: &Value) -> Option<Redirect> {
        let Value::Error(message) = reply else {
            return None;
        };
        let message = std::str::from_utf8(message).ok()?;
        let mut words = message.split(' ');
        let code = words.next()?;
        match code {
            "MOVED" | "ASK" => {
                let slot = words.next()?.parse().ok()?;
                let addr = words.next()?.to_string();
                if addr.is_empty() {
                    return None;
                }
                Some(if code == "MOVED" {
                    Redirect::Moved { slot, addr }
                } else {
                    Redirect::Ask { addr }
                })
            }
            "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" => Some(Redirect::Retry),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_read_from_error_replies() {
        assert_eq!(
            Redirect::of(&Value::error("MOVED 3999 127.0.0.1:6381")),
            Some(Redirect::Moved {
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            Redirect::of(&Value::error("ASK 3999 127.0.0.1:6381")),
            Some(Redirect::Ask {
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            Redirect::of(&Value::error(
                "TRYAGAIN Multiple keys request during rehashing of slot"
            )),
            Some(Redirect::Retry)
        );
        assert_eq!(
            Redirect::of(&Value::error("CLUSTERDOWN The cluster is down")),
            Some(Redirect::Retry)
        );
        // No host: the node that answered (Redis 7 without a known endpoint).
        assert_eq!(
            Redirect::of(&Value::error("MOVED 1 :6379")),
            Some(Redirect::Moved {
                slot: 1,
                addr: ":6379".into()
            })
        );
        for not in ["MOVED", "MOVED x 1.2.3.4:5", "MOVED 1", "ERR wrong", "MOVED 1 "] {
            assert_eq!(Redirect::of(&Value::error(not)), None, "{not}");
        }
        assert_eq!(Redirect::of(&Value::simple("MOVED 1 a:1")), None);
    }
}
