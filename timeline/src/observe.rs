//! What one trace record shows, read the way a person reading the timeline needs it: each
//! member's role, which master claims which slots, which slots are being moved, and what is
//! failing. Pure functions of one record (plus the node ids seen so far, so that a node that
//! stopped answering is still known by its ordinal).

use engine::trace::TraceRecord;
use engine::{Effect, OpenSlot, Ordinal, SLOT_COUNT};
use std::collections::BTreeMap;

/// Node ids (and `ip:port` addresses) seen so far, mapped to the ordinal that ran them.
#[derive(Debug, Default, Clone)]
pub struct Ids {
    by_id: BTreeMap<String, Ordinal>,
    by_addr: BTreeMap<String, Ordinal>,
}

impl Ids {
    /// Learns every answering member's own id and address, then the ids other nodes list at
    /// a member's address (a member that never answered in the trace is known that way).
    pub fn learn(&mut self, rec: &TraceRecord) {
        for (&ordinal, m) in &rec.observation.members {
            if let Some(addr) = &m.addr {
                self.by_addr.insert(addr.to_string(), ordinal);
            }
            if let Some(state) = &m.redis {
                self.by_id.insert(state.id.clone(), ordinal);
            }
        }
        for m in rec.observation.members.values() {
            let Some(state) = &m.redis else { continue };
            for entry in state.nodes.iter().filter(|e| !e.flags.myself) {
                if self.by_id.contains_key(&entry.id) {
                    continue;
                }
                let at = entry.addr.as_ref().map(ToString::to_string);
                if let Some(&o) = at.as_ref().and_then(|a| self.by_addr.get(a)) {
                    self.by_id.insert(entry.id.clone(), o);
                }
            }
        }
    }

    /// The ordinal a node id belongs to, as far as any member has said so far.
    pub fn ordinal(&self, id: &str) -> Option<Ordinal> {
        self.by_id.get(id).copied()
    }

    /// The ordinal of a `CLUSTER NODES` entry: by id, else by address.
    fn ordinal_of_entry(&self, entry: &engine::ClusterNode) -> Option<Ordinal> {
        self.ordinal(&entry.id).or_else(|| {
            entry
                .addr
                .as_ref()
                .and_then(|a| self.by_addr.get(&a.to_string()).copied())
        })
    }
}

/// A member's role at one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Not a member at all (never created, or deleted).
    Absent,
    /// A member whose process is not running.
    Stopped,
    /// Running, but Redis did not answer.
    Silent,
    Master,
    Replica,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Absent => "absent",
            Role::Stopped => "stopped",
            Role::Silent => "silent",
            Role::Master => "master",
            Role::Replica => "replica",
        }
    }

    /// Stopped and silent members are the ones a reader calls failed.
    pub fn is_failed(self) -> bool {
        matches!(self, Role::Stopped | Role::Silent)
    }
}

/// How the other answering nodes flag a member: the worst flag any of them shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flag {
    None,
    /// `fail?` in some view.
    Pfail,
    /// `fail` in some view.
    Fail,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::None => "",
            Flag::Pfail => "fail?",
            Flag::Fail => "fail",
        }
    }
}

/// One member at one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAt {
    pub role: Role,
    /// For a master: itself when it claims slots; for a replica: its master's ordinal (when
    /// known). The colour of the lane is that master's.
    pub group: Option<Ordinal>,
    /// Slots it claims itself (its `myself` line).
    pub slots: u32,
    /// `DBSIZE`.
    pub keys: u64,
    pub flag: Flag,
}

/// The state of member `ordinal` at `rec`; `flags` from [`flags`].
pub fn node_at(
    rec: &TraceRecord,
    ids: &Ids,
    flags: &BTreeMap<Ordinal, Flag>,
    ordinal: Ordinal,
) -> NodeAt {
    let flag = flags.get(&ordinal).copied().unwrap_or(Flag::None);
    let Some(member) = rec.observation.members.get(&ordinal) else {
        return NodeAt {
            role: Role::Absent,
            group: None,
            slots: 0,
            keys: 0,
            flag,
        };
    };
    let quiet = |role| NodeAt {
        role,
        group: None,
        slots: 0,
        keys: 0,
        flag,
    };
    if !member.running {
        return quiet(Role::Stopped);
    }
    let Some(state) = &member.redis else {
        return quiet(Role::Silent);
    };
    let me = state.myself();
    let slots = me.map_or(0, |m| m.slot_count());
    let (role, group) = match me {
        Some(m) if m.is_master() => (Role::Master, (slots > 0).then_some(ordinal)),
        Some(m) => (
            Role::Replica,
            m.master_id.as_deref().and_then(|id| ids.ordinal(id)),
        ),
        None => (Role::Master, None),
    };
    NodeAt {
        role,
        group,
        slots,
        keys: state.keys,
        flag,
    }
}

/// For each member some other answering node flags, the worst flag shown: one pass over
/// every view, since a member's lane needs it at every record.
pub fn flags(rec: &TraceRecord, ids: &Ids) -> BTreeMap<Ordinal, Flag> {
    let mut worst: BTreeMap<Ordinal, Flag> = BTreeMap::new();
    for (&viewer, m) in &rec.observation.members {
        let Some(state) = &m.redis else { continue };
        for entry in state.nodes.iter().filter(|e| !e.flags.myself) {
            let f = if entry.flags.fail {
                Flag::Fail
            } else if entry.flags.pfail {
                Flag::Pfail
            } else {
                continue;
            };
            match ids.ordinal_of_entry(entry) {
                Some(o) if o != viewer => {
                    let w = worst.entry(o).or_insert(Flag::None);
                    *w = (*w).max(f);
                }
                _ => {}
            }
        }
    }
    worst
}

/// A run of slots and who serves it: `owner` is `None` where no answering master claims the
/// slots. Where two masters claim the same slots, the higher config epoch wins (as in Redis)
/// and `contested` says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub start: u16,
    pub end: u16,
    pub owner: Option<Ordinal>,
    pub contested: bool,
}

/// The slot map at `rec`, from each answering master's own claim, covering 0..=16383.
pub fn bands(rec: &TraceRecord) -> Vec<Band> {
    // (start, end, epoch, ordinal) of each self-claimed range.
    let mut claims: Vec<(u32, u32, u64, Ordinal)> = Vec::new();
    for (&ordinal, m) in &rec.observation.members {
        let Some(me) = m.redis.as_ref().and_then(|s| s.myself()) else {
            continue;
        };
        if !me.is_master() || !m.running {
            continue;
        }
        for r in &me.slots {
            claims.push((
                u32::from(r.start),
                u32::from(r.end),
                me.config_epoch,
                ordinal,
            ));
        }
    }
    // Every boundary where a claim starts or ends; between two of them the claimants are fixed.
    let mut cuts: Vec<u32> = vec![0, u32::from(SLOT_COUNT)];
    for &(s, e, _, _) in &claims {
        cuts.push(s);
        cuts.push(e + 1);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<Band> = Vec::new();
    for w in cuts.windows(2) {
        let (s, e) = (w[0], w[1] - 1);
        let over: Vec<&(u32, u32, u64, Ordinal)> =
            claims.iter().filter(|c| c.0 <= s && e <= c.1).collect();
        let owner = over
            .iter()
            .max_by_key(|c| (c.2, u32::MAX - c.3))
            .map(|c| c.3);
        let contested = over.len() > 1;
        let (start, end) = (s as u16, e as u16);
        match out.last_mut() {
            Some(b) if b.owner == owner && b.contested == contested && b.end + 1 == start => {
                b.end = end;
            }
            _ => out.push(Band {
                start,
                end,
                owner,
                contested,
            }),
        }
    }
    out
}

/// Slots being moved from one member to another at one record, as the `MIGRATING` and
/// `IMPORTING` markers show them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Move {
    /// `None` when the other end is a node no member runs any more.
    pub from: Option<Ordinal>,
    pub to: Option<Ordinal>,
    /// Open slots of this pair.
    pub slots: u32,
    /// Keys of those slots still on the source, and already on the target.
    pub keys_left: u64,
    pub keys_moved: u64,
}

/// The migrations in flight at `rec`, one entry per (source, target) pair.
pub fn moves(rec: &TraceRecord, ids: &Ids) -> Vec<Move> {
    // slot -> (from, to, keys on source, keys on target)
    type Open = (Option<Ordinal>, Option<Ordinal>, u64, u64);
    let mut open: BTreeMap<u16, Open> = BTreeMap::new();
    for (&ordinal, m) in &rec.observation.members {
        let Some(state) = &m.redis else { continue };
        let Some(me) = state.myself() else { continue };
        for o in &me.open_slots {
            let keys = state.open_slot_keys.get(&o.slot()).copied().unwrap_or(0);
            let e = open.entry(o.slot()).or_insert((None, None, 0, 0));
            match o {
                OpenSlot::Migrating { target, .. } => {
                    e.0 = Some(ordinal);
                    e.1 = e.1.or_else(|| ids.ordinal(target));
                    e.2 = keys;
                }
                OpenSlot::Importing { source, .. } => {
                    e.1 = Some(ordinal);
                    e.0 = e.0.or_else(|| ids.ordinal(source));
                    e.3 = keys;
                }
            }
        }
    }
    let mut pairs: BTreeMap<(Option<Ordinal>, Option<Ordinal>), Move> = BTreeMap::new();
    for (from, to, left, moved) in open.into_values() {
        let p = pairs.entry((from, to)).or_insert(Move {
            from,
            to,
            slots: 0,
            keys_left: 0,
            keys_moved: 0,
        });
        p.slots += 1;
        p.keys_left += left;
        p.keys_moved += moved;
    }
    pairs.into_values().collect()
}

/// The members an effect acts on: where a mark goes in the lanes.
pub fn touched(effect: &Effect) -> Vec<Ordinal> {
    match effect {
        Effect::MigrateSlots { from, to, .. }
        | Effect::MoveStrayKeys { from, to, .. }
        | Effect::RestoreDroppedKeys { from, to, .. } => vec![*from, *to],
        other => vec![other.target()],
    }
}
