//! What a steady-state observation remembers of each node's full view (`CLUSTER NODES`), and
//! when it may hand the remembered view to the engine instead of reading it again.
//!
//! A full view is one line per node of the cluster, so reading every node's is quadratic:
//! ~6 MB a pass at 100 masters × 1. Each node's *summary* (the counter-free fields of
//! `CLUSTER INFO` and `INFO replication`, ~1 KB) is read every pass; a remembered view is
//! reused only while nothing says the cluster moved: see `docs/controller.md`, "Steady-state
//! passes", for the rules and for what a summary cannot show.

use engine::Addr;
use engine::model::{ClusterNode, View};
use engine::parse::parse_info;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Full views read every steady pass at least, the oldest first.
pub(crate) const MIN_FRESH_VIEWS: usize = 3;
/// Every remembered view is read again within this many steady passes of its cluster.
pub(crate) const ROTATION_PASSES: usize = 16;
/// A view not used for this long belongs to a node that went away (a pod's old address).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// `CLUSTER INFO` fields that say the cluster changed: the state, the slot counts by health,
/// the number of nodes and of serving masters, the epochs. The message counters
/// (`cluster_stats_*`) change every second and are left out.
const CLUSTER_FIELDS: &[&str] = &[
    "cluster_state",
    "cluster_slots_assigned",
    "cluster_slots_ok",
    "cluster_slots_pfail",
    "cluster_slots_fail",
    "cluster_known_nodes",
    "cluster_size",
    "cluster_current_epoch",
    "cluster_my_epoch",
];

/// `INFO replication` fields that say the node's role or link changed (offsets left out).
const REPLICATION_FIELDS: &[&str] = &[
    "role",
    "master_host",
    "master_port",
    "master_link_status",
    "connected_slaves",
    "master_replid",
];

/// The small facts read from every node every pass; a change in any forces full views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The number the adapter's connection to the node was opened as: a restarted server
    /// breaks the connection, so a new number means the node may be a new process.
    connection: Option<u64>,
    fields: Vec<(&'static str, String)>,
}

impl Summary {
    pub(crate) fn from_replies(connection: Option<u64>, info_text: &str, repl_text: &str) -> Self {
        let (info, repl) = (parse_info(info_text), parse_info(repl_text));
        let mut fields = Vec::with_capacity(CLUSTER_FIELDS.len() + REPLICATION_FIELDS.len());
        for (map, names) in [(&info, CLUSTER_FIELDS), (&repl, REPLICATION_FIELDS)] {
            for name in names {
                let value = map.get(*name).map(|v| v.trim().to_string());
                fields.push((*name, value.unwrap_or_default()));
            }
        }
        Self { connection, fields }
    }

    fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The node sees the whole cluster serving: state ok, every slot assigned to a master
    /// it does not suspect.
    fn calm(&self) -> bool {
        self.field("cluster_state") == "ok"
            && self.field("cluster_slots_assigned") == "16384"
            && self.field("cluster_slots_ok") == "16384"
            && self.field("cluster_slots_pfail") == "0"
            && self.field("cluster_slots_fail") == "0"
    }
}

/// A view as last read, with the summary read with it.
struct Remembered {
    summary: Summary,
    /// Kept as read, on the base it shares with the other views of its pass.
    nodes: View,
    /// `quiet(&nodes)`, worked out once: `plan` asks it of every view every pass.
    quiet: bool,
    /// The steady pass (of this cache) that read it.
    read_in: u64,
    used: Instant,
}

/// Which full views a steady pass reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Every node's: something moved, or nothing is remembered yet.
    All(&'static str),
    /// These nodes' only (the oldest views); the others' are reused.
    Some(Vec<Addr>),
}

/// Remembered views by node address. One per adapter, shared by its clones.
#[derive(Default)]
pub(crate) struct ViewCache {
    views: HashMap<Addr, Remembered>,
    passes: u64,
    /// Steady observations turned off: every observation reads every view, as before they
    /// existed, and nothing is remembered.
    off: bool,
}

impl ViewCache {
    pub(crate) fn turn_off(&mut self) {
        self.off = true;
        self.views.clear();
    }

    pub(crate) fn is_off(&self) -> bool {
        self.off
    }

    /// Forgets every view: effects were executed, so no remembered view may be trusted.
    pub(crate) fn clear(&mut self) {
        self.views.clear();
    }

    /// Remembers `nodes` as `addr`'s full view, read with `summary` (a clone of the view's
    /// handle: its shared base is not copied).
    pub(crate) fn remember(&mut self, addr: &Addr, summary: Summary, nodes: &View) {
        if self.off {
            return;
        }
        self.views.insert(
            addr.clone(),
            Remembered {
                summary,
                quiet: quiet(nodes),
                nodes: nodes.clone(),
                read_in: self.passes,
                used: Instant::now(),
            },
        );
    }

    /// Which full views to read this steady pass, given every node's summary. `complete` is
    /// false when a member with an address did not answer or is not running.
    pub(crate) fn plan(&mut self, summaries: &[(Addr, Summary)], complete: bool) -> Reads {
        self.passes += 1;
        let now = Instant::now();
        self.views
            .retain(|_, r| now.duration_since(r.used) < FORGET_AFTER);
        if !complete {
            return Reads::All("a member is down or did not answer");
        }
        let mut epochs = summaries.iter().map(|(_, s)| {
            (
                s.field("cluster_current_epoch"),
                s.field("cluster_known_nodes"),
            )
        });
        let first = epochs.next();
        if epochs.any(|e| Some(e) != first) {
            return Reads::All("nodes disagree on the epoch or the number of nodes");
        }
        if first.is_some_and(|(_, known)| known != summaries.len().to_string()) {
            return Reads::All("the nodes know more or fewer nodes than there are members");
        }
        for (addr, summary) in summaries {
            if !summary.calm() {
                return Reads::All("a node sees slots unserved or suspected");
            }
            let Some(r) = self.views.get(addr) else {
                return Reads::All("a node's view is not remembered");
            };
            if r.summary != *summary {
                return Reads::All("a node's summary changed");
            }
            if !r.quiet {
                return Reads::All("a remembered view shows a failing, unlinked or open node");
            }
        }
        let fresh = MIN_FRESH_VIEWS.max(summaries.len().div_ceil(ROTATION_PASSES));
        let mut oldest: Vec<(u64, &Addr)> = summaries
            .iter()
            .map(|(addr, _)| (self.views.get(addr).map_or(0, |r| r.read_in), addr))
            .collect();
        oldest.sort();
        Reads::Some(
            oldest
                .into_iter()
                .take(fresh)
                .map(|(_, a)| a.clone())
                .collect(),
        )
    }

    /// Whether `fresh`, just read from `addr`, says what its remembered view said (ping and
    /// pong times aside). A difference means the cluster moved in a way no summary showed.
    pub(crate) fn unchanged(&self, addr: &Addr, fresh: &[ClusterNode]) -> bool {
        self.views
            .get(addr)
            .is_some_and(|r| same_view(&r.nodes, fresh))
    }

    /// `addr`'s remembered view, for a node whose full view this pass does not read: the same
    /// view again (its shared base is not copied).
    pub(crate) fn reuse(&mut self, addr: &Addr) -> Option<View> {
        let r = self.views.get_mut(addr)?;
        r.used = Instant::now();
        Some(r.nodes.clone())
    }
}

/// Nothing in the view is in flux: no node suspected, failed, in handshake or without
/// address, every bus link up, and no slot open on the node itself (Redis shows open slots on
/// the `myself` line only, and no counter of `CLUSTER INFO` counts them).
fn quiet(nodes: &View) -> bool {
    nodes.iter().all(|n| {
        !(n.flags.pfail || n.flags.fail || n.flags.handshake || n.flags.noaddr)
            && n.addr.is_some()
            && n.link == engine::model::LinkState::Connected
            && n.open_slots.is_empty()
    })
}

/// Two views list the same nodes with the same addresses, roles, masters, epochs, links and
/// slots; ping and pong times differ from one read to the next and are ignored.
fn same_view(a: &View, b: &[ClusterNode]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // By reference, sorted by id: a view is compared every pass for each view read again,
    // and copying 200 entries twice to blank their timers cost more than reading them.
    let mut a: Vec<&ClusterNode> = a.iter().collect();
    let mut b: Vec<&ClusterNode> = b.iter().collect();
    a.sort_by(|x, y| x.id.cmp(&y.id));
    b.sort_by(|x, y| x.id.cmp(&y.id));
    a.iter().zip(&b).all(|(x, y)| same_but_timers(x, y))
}

/// Equal in every field but the ping and pong times, which move on every heartbeat. Written
/// out field by field so that a new field of `ClusterNode` fails to compile here until it is
/// decided whether it counts.
fn same_but_timers(a: &ClusterNode, b: &ClusterNode) -> bool {
    let ClusterNode {
        id,
        addr,
        hostname,
        flags,
        master_id,
        ping_sent_ms: _,
        pong_recv_ms: _,
        config_epoch,
        link,
        slots,
        open_slots,
    } = a;
    *id == b.id
        && *addr == b.addr
        && *hostname == b.hostname
        && *flags == b.flags
        && *master_id == b.master_id
        && *config_epoch == b.config_epoch
        && *link == b.link
        && *slots == b.slots
        && *open_slots == b.open_slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::parse::parse_cluster_nodes;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    fn view(me: &str, b_flags: &str, b_link: &str, pong: u64) -> Vec<ClusterNode> {
        let line = |id: &str, port: u16, flags: &str, slots: &str, link: &str| {
            let flags = if id == me {
                format!("myself,{flags}")
            } else {
                flags.to_string()
            };
            format!(
                "{id} 127.0.0.1:{port}@{} {flags} - 0 {pong} 1 {link} {slots}\n",
                port + 10000
            )
        };
        let text = [
            line(A, 7000, "master", "0-8191", "connected"),
            line(B, 7001, b_flags, "8192-16383", b_link),
            format!(
                "{C} 127.0.0.1:7002@17002 {}slave {A} 0 {pong} 1 connected\n",
                if me == C { "myself," } else { "" }
            ),
        ]
        .concat();
        parse_cluster_nodes(&text).expect("a valid view")
    }

    fn summary(epoch: u64, state: &str) -> Summary {
        let info = format!(
            "cluster_state:{state}\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\n\
             cluster_size:2\r\ncluster_current_epoch:{epoch}\r\ncluster_my_epoch:1\r\n\
             cluster_stats_messages_sent:{}\r\n",
            epoch * 1000
        );
        Summary::from_replies(Some(1), &info, "role:master\r\nconnected_slaves:0\r\n")
    }

    fn addr(port: u16) -> Addr {
        Addr::new("127.0.0.1", port)
    }

    fn seeded() -> (ViewCache, Vec<(Addr, Summary)>) {
        let mut cache = ViewCache::default();
        let summaries: Vec<(Addr, Summary)> =
            (7000..7003).map(|p| (addr(p), summary(5, "ok"))).collect();
        for ((a, s), me) in summaries.iter().zip([A, B, C]) {
            cache.remember(a, s.clone(), &view(me, "master", "connected", 10).into());
        }
        (cache, summaries)
    }

    #[test]
    fn a_calm_cluster_reads_three_views_a_pass_oldest_first_and_reuses_the_rest() {
        let mut cache = ViewCache::default();
        let addrs: Vec<Addr> = (7000..7010).map(addr).collect();
        let mut ten = String::new();
        for (i, a) in addrs.iter().enumerate() {
            ten.push_str(&format!(
                "{:040x} {a}@{} {}master - 0 0 1 connected {}\n",
                i,
                a.bus_port(),
                if i == 0 { "myself," } else { "" },
                if i == 0 { "0-16383" } else { "" }
            ));
        }
        let nodes: View = parse_cluster_nodes(&ten).expect("valid").into();
        let ten_known: Vec<(Addr, Summary)> = addrs
            .iter()
            .map(|a| {
                let info = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n\
                            cluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\n\
                            cluster_slots_fail:0\r\ncluster_known_nodes:10\r\n";
                (
                    a.clone(),
                    Summary::from_replies(Some(1), info, "role:master\r\n"),
                )
            })
            .collect();
        for (a, s) in &ten_known {
            cache.remember(a, s.clone(), &nodes);
        }
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let Reads::Some(fresh) = cache.plan(&ten_known, true) else {
                panic!("calm");
            };
            assert_eq!(fresh.len(), MIN_FRESH_VIEWS);
            let unseen = fresh.iter().filter(|a| !seen.contains(*a)).count();
            assert_eq!(
                unseen,
                MIN_FRESH_VIEWS.min(10 - seen.len()),
                "the oldest first"
            );
            for a in fresh {
                seen.insert(a.clone());
                cache.remember(&a, ten_known[0].1.clone(), &nodes);
            }
        }
        assert_eq!(seen.len(), 10, "four passes of three reach all ten views");
        assert!(cache.reuse(&addrs[9]).is_some());
    }

    #[test]
    fn any_change_in_a_summary_reads_every_view() {
        let (mut cache, mut summaries) = seeded();
        summaries[1].1 = summary(6, "ok");
        let Reads::All(_) = cache.plan(&summaries, true) else {
            panic!("a new epoch on one node must read every view");
        };
    }

    #[test]
    fn message_counters_alone_do_not_count_as_a_change() {
        let (mut cache, summaries) = seeded();
        let info = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
                    cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:3\r\n\
                    cluster_size:2\r\ncluster_current_epoch:5\r\ncluster_my_epoch:1\r\n\
                    cluster_stats_messages_sent:123456\r\n";
        let later = Summary::from_replies(Some(1), info, "role:master\r\nconnected_slaves:0\r\n");
        assert_eq!(later, summaries[0].1);
        assert!(matches!(cache.plan(&summaries, true), Reads::Some(_)));
    }

    #[test]
    fn a_new_connection_reads_every_view() {
        let (mut cache, mut summaries) = seeded();
        summaries[2].1.connection = Some(2);
        assert!(matches!(cache.plan(&summaries, true), Reads::All(_)));
    }

    #[test]
    fn a_missing_member_or_a_cluster_not_ok_reads_every_view() {
        let (mut cache, mut summaries) = seeded();
        assert!(matches!(cache.plan(&summaries, false), Reads::All(_)));
        summaries[0].1 = summary(5, "fail");
        assert!(matches!(cache.plan(&summaries, true), Reads::All(_)));
    }

    #[test]
    fn a_remembered_view_with_a_suspected_or_unlinked_node_is_never_reused() {
        for (flags, link) in [
            ("master,fail?", "connected"),
            ("master,fail", "connected"),
            ("master", "disconnected"),
        ] {
            let (mut cache, summaries) = seeded();
            cache.remember(
                &summaries[0].0,
                summaries[0].1.clone(),
                &view(A, flags, link, 10).into(),
            );
            assert!(
                matches!(cache.plan(&summaries, true), Reads::All(_)),
                "{flags} {link}"
            );
        }
    }

    #[test]
    fn a_view_that_differs_only_in_ping_times_is_unchanged() {
        let (cache, summaries) = seeded();
        assert!(cache.unchanged(&summaries[0].0, &view(A, "master", "connected", 99)));
        let mut moved = view(A, "master", "connected", 10);
        moved[0].slots.clear();
        assert!(!cache.unchanged(&summaries[0].0, &moved));
    }

    #[test]
    fn a_reused_view_is_the_remembered_one_not_a_copy() {
        let (mut cache, summaries) = seeded();
        let mut shared = engine::ViewInterner::default();
        let read = shared.view(view(B, "master", "connected", 10));
        cache.remember(&summaries[1].0, summaries[1].1.clone(), &read);
        let reused = cache.reuse(&summaries[1].0).expect("remembered");
        assert!(reused.shares_base_with(&read));
        assert_eq!(reused, read);
    }

    #[test]
    fn clearing_forgets_every_view() {
        let (mut cache, summaries) = seeded();
        cache.clear();
        assert!(matches!(cache.plan(&summaries, true), Reads::All(_)));
        assert!(cache.reuse(&summaries[0].0).is_none());
    }
}
