//! Parsers for what Redis prints: `CLUSTER NODES`, `CLUSTER INFO` and `INFO` sections.
//! They accept the output of Redis 5 to 8 and Valkey and return an error, never a panic, on
//! anything else (fuzzed in `fuzz/`).

use crate::model::{Addr, ClusterNode, LinkState, NodeFlags, OpenSlot};
use crate::slots::{SLOT_COUNT, SlotRange};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CLUSTER NODES line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

fn err(line: usize, reason: impl Into<String>) -> ParseError {
    ParseError {
        line,
        reason: reason.into(),
    }
}

/// Parses the whole `CLUSTER NODES` reply.
pub fn parse_cluster_nodes(text: &str) -> Result<Vec<ClusterNode>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(i + 1, l.trim()))
        .collect()
}

fn parse_line(line: usize, text: &str) -> Result<ClusterNode, ParseError> {
    // The eight fixed fields in an array and the slots straight from the iterator: an
    // observer parses thousands of lines a pass, and a vector per line showed in profiles.
    let mut tokens = text.split_ascii_whitespace();
    let mut fields = [""; 8];
    for (found, field) in fields.iter_mut().enumerate() {
        *field = tokens
            .next()
            .ok_or_else(|| err(line, format!("expected at least 8 fields, found {found}")))?;
    }
    let id = fields[0];
    if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err(line, format!("node id {id:?} is not 40 hex digits")));
    }
    let (addr, hostname) = parse_address(line, fields[1])?;
    let flags = parse_flags(line, fields[2])?;
    let master_id = match fields[3] {
        "-" => None,
        m if m.len() == 40 && m.bytes().all(|b| b.is_ascii_hexdigit()) => Some(m.to_string()),
        m => {
            return Err(err(
                line,
                format!("master id {m:?} is neither '-' nor a node id"),
            ));
        }
    };
    let number = |i: usize, what: &str| {
        fields[i]
            .parse::<u64>()
            .map_err(|_| err(line, format!("{what} {:?} is not a number", fields[i])))
    };
    let ping_sent_ms = number(4, "ping-sent")?;
    let pong_recv_ms = number(5, "pong-recv")?;
    let config_epoch = number(6, "config-epoch")?;
    let link = match fields[7] {
        "connected" => LinkState::Connected,
        "disconnected" => LinkState::Disconnected,
        other => return Err(err(line, format!("unknown link state {other:?}"))),
    };
    let mut slots = Vec::new();
    let mut open_slots = Vec::new();
    for token in tokens {
        if let Some(inner) = token.strip_prefix('[') {
            open_slots.push(parse_open_slot(line, inner)?);
        } else {
            slots.push(parse_slot_range(line, token)?);
        }
    }
    slots.sort();
    Ok(ClusterNode {
        id: id.to_string(),
        addr,
        hostname,
        flags,
        master_id,
        ping_sent_ms,
        pong_recv_ms,
        config_epoch,
        link,
        slots,
        open_slots,
    })
}

/// `ip:port@cport[,hostname[,aux=value…]]`, `ip:port` (Redis < 4), or `:0@0` for no address.
/// IPv6 addresses keep their colons: the port is after the last one.
fn parse_address(line: usize, field: &str) -> Result<(Option<Addr>, Option<String>), ParseError> {
    let mut parts = field.split(',');
    let hostport = parts.next().unwrap_or_default();
    let hostname = parts
        .next()
        .filter(|h| !h.is_empty() && !h.contains('='))
        .map(str::to_string);
    let hostport = hostport.split('@').next().unwrap_or_default();
    let Some((ip, port)) = hostport.rsplit_once(':') else {
        return Err(err(line, format!("address {field:?} has no port")));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| err(line, format!("port in {field:?} is not a number")))?;
    if ip.is_empty() || port == 0 {
        return Ok((None, hostname));
    }
    Ok((Some(Addr::new(ip, port)), hostname))
}

fn parse_flags(line: usize, field: &str) -> Result<NodeFlags, ParseError> {
    let mut flags = NodeFlags::default();
    for flag in field.split(',') {
        match flag {
            "myself" => flags.myself = true,
            "master" => flags.master = true,
            "slave" | "replica" => flags.replica = true,
            "fail?" => flags.pfail = true,
            "fail" => flags.fail = true,
            "handshake" => flags.handshake = true,
            "noaddr" => flags.noaddr = true,
            "nofailover" => flags.nofailover = true,
            "noflags" | "" => {}
            other => return Err(err(line, format!("unknown flag {other:?}"))),
        }
    }
    Ok(flags)
}

fn parse_slot(line: usize, text: &str) -> Result<u16, ParseError> {
    match text.parse::<u16>() {
        Ok(s) if s < SLOT_COUNT => Ok(s),
        _ => Err(err(line, format!("{text:?} is not a slot (0-16383)"))),
    }
}

fn parse_slot_range(line: usize, token: &str) -> Result<SlotRange, ParseError> {
    match token.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse_slot(line, a)?, parse_slot(line, b)?);
            if a > b {
                return Err(err(line, format!("slot range {token:?} is reversed")));
            }
            Ok(SlotRange::new(a, b))
        }
        None => Ok(SlotRange::single(parse_slot(line, token)?)),
    }
}

/// `slot->-id]` or `slot-<-id]` (the leading `[` already removed).
fn parse_open_slot(line: usize, inner: &str) -> Result<OpenSlot, ParseError> {
    let Some(inner) = inner.strip_suffix(']') else {
        return Err(err(line, format!("open slot [{inner} is not closed")));
    };
    let checked_id = |id: &str| {
        if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(id.to_string())
        } else {
            Err(err(line, format!("open slot names {id:?}, not a node id")))
        }
    };
    if let Some((slot, target)) = inner.split_once("->-") {
        Ok(OpenSlot::Migrating {
            slot: parse_slot(line, slot)?,
            target: checked_id(target)?,
        })
    } else if let Some((slot, source)) = inner.split_once("-<-") {
        Ok(OpenSlot::Importing {
            slot: parse_slot(line, slot)?,
            source: checked_id(source)?,
        })
    } else {
        Err(err(line, format!("open slot [{inner}] is malformed")))
    }
}

/// Parses `key:value` lines (`CLUSTER INFO`, any `INFO` section); comments and blanks skipped.
/// Borrowed from `text`: the observer reads two of these from every node every pass, and
/// keeps only a few values of each.
pub fn parse_info(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "07c37dfeb235213a872192d90877d0cd55635b91";
    const B: &str = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1";

    #[test]
    fn a_redis_7_master_line_with_hostname_and_open_slots_parses() {
        let text = format!(
            "{A} 127.0.0.1:30004@31004,redis-0 myself,master - 0 1426238317239 4 connected 0-5460 5462 [5461->-{B}] [5463-<-{B}]\n"
        );
        let nodes = parse_cluster_nodes(&text).expect("parses");
        let n = &nodes[0];
        assert_eq!(n.addr, Some(Addr::new("127.0.0.1", 30004)));
        assert_eq!(n.hostname.as_deref(), Some("redis-0"));
        assert!(n.flags.myself && n.flags.master);
        assert_eq!(
            n.slots,
            vec![SlotRange::new(0, 5460), SlotRange::single(5462)]
        );
        assert_eq!(
            n.open_slots,
            vec![
                OpenSlot::Migrating {
                    slot: 5461,
                    target: B.into()
                },
                OpenSlot::Importing {
                    slot: 5463,
                    source: B.into()
                }
            ]
        );
    }

    #[test]
    fn a_redis_5_replica_line_without_bus_port_parses() {
        let text =
            format!("{B} 10.0.0.5:6379 slave,fail {A} 1426238316232 1426238316232 3 disconnected");
        let n = &parse_cluster_nodes(&text).expect("parses")[0];
        assert!(n.flags.replica && n.flags.fail);
        assert_eq!(n.master_id.as_deref(), Some(A));
        assert_eq!(n.link, LinkState::Disconnected);
    }

    #[test]
    fn a_node_without_address_has_no_addr() {
        let text = format!("{B} :0@0 master,fail?,noaddr - 0 0 0 disconnected");
        let n = &parse_cluster_nodes(&text).expect("parses")[0];
        assert_eq!(n.addr, None);
        assert!(n.flags.noaddr && n.flags.pfail);
    }

    #[test]
    fn an_empty_hostname_and_aux_fields_are_ignored() {
        let text = format!("{B} 127.0.0.1:7000@17000,,shard-id=abc master - 0 0 1 connected");
        let n = &parse_cluster_nodes(&text).expect("parses")[0];
        assert_eq!(n.hostname, None);
    }

    #[test]
    fn ipv6_addresses_keep_their_colons() {
        let text = format!("{B} ::1:7000@17000 master - 0 0 1 connected");
        let n = &parse_cluster_nodes(&text).expect("parses")[0];
        assert_eq!(n.addr, Some(Addr::new("::1", 7000)));
    }

    #[test]
    fn garbage_is_an_error_that_names_the_line() {
        let text = format!("{A} 127.0.0.1:1@2 master - 0 0 1 connected\nnot a line");
        let e = parse_cluster_nodes(&text).expect_err("rejects");
        assert_eq!(e.line, 2);
        for bad in [
            format!("{A} 127.0.0.1:1@2 master - 0 0 1 connected 16384"),
            format!("{A} 127.0.0.1:1@2 master - 0 0 1 connected 9-3"),
            format!("{A} 127.0.0.1:1@2 wizard - 0 0 1 connected"),
            format!("{A} 127.0.0.1:1@2 master - 0 0 1 connected [5->-zz]"),
        ] {
            assert!(parse_cluster_nodes(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn info_lines_become_a_map() {
        let m = parse_info("# Cluster\r\ncluster_state:ok\r\ncluster_known_nodes:6\r\n");
        assert_eq!(m.get("cluster_state").copied(), Some("ok"));
        assert_eq!(m.get("cluster_known_nodes").copied(), Some("6"));
    }
}
