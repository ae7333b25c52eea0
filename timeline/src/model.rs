//! A trace folded into what the page draws: runs of identical states become one span, so a
//! trace of 10,000 records and 200 nodes is drawn from a few thousand spans, not two million
//! cells. The page's script reads this as JSON; field names are short because a large trace
//! embeds many of them.

use crate::observe::{self, Band, Flag, Ids, Move, NodeAt, Role};
use engine::trace::TraceRecord;
use engine::{ConditionKind, Ordinal};
use serde::Serialize;
use std::collections::BTreeMap;

/// Something that happened at a record that the records themselves do not say (a fault the
/// simulator injected), or that the timeline derived from them (a node that stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Index of the record it belongs to.
    #[serde(rename = "i")]
    pub index: u32,
    /// The member it concerns, when one does.
    #[serde(rename = "o")]
    pub ordinal: Option<Ordinal>,
    #[serde(rename = "k")]
    pub kind: NoteKind,
    #[serde(rename = "t")]
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoteKind {
    /// Injected by the simulator.
    Fault,
    /// Seen in the observation: a node stopped, stopped answering, or was flagged failing.
    Failure,
    /// An effect that keeps failing, or data lost (from the observation's history).
    Stuck,
    /// The engine today decides differently from the recorded decision.
    Difference,
}

/// Half-open run of records `[from, to)` sharing one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span<T> {
    #[serde(rename = "a")]
    pub from: u32,
    #[serde(rename = "b")]
    pub to: u32,
    #[serde(rename = "v")]
    pub value: T,
}

/// A member's state over a span (keys are the first and last `DBSIZE` of the span: they
/// change every step, and would break every run if they were part of the state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneState {
    #[serde(rename = "r")]
    pub role: &'static str,
    /// The master whose colour the lane takes (itself, or the master it replicates).
    #[serde(rename = "g")]
    pub group: Option<Ordinal>,
    #[serde(rename = "s")]
    pub slots: u32,
    #[serde(rename = "f")]
    pub flag: &'static str,
    #[serde(rename = "k0")]
    pub keys_first: u64,
    #[serde(rename = "k1")]
    pub keys_last: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lane {
    #[serde(rename = "o")]
    pub ordinal: Ordinal,
    #[serde(rename = "sp")]
    pub spans: Vec<Span<LaneState>>,
}

/// One slot band: `[start, end, owner, contested]`.
pub type BandCell = (u16, u16, Option<Ordinal>, bool);
/// One pair of migration ends: `[from, to, open slots, keys left, keys moved]`.
pub type MoveCell = (Option<Ordinal>, Option<Ordinal>, u32, u64, u64);

/// A condition's value over a span: `[status, reason, message]`.
pub type ConditionCell = (bool, String, String);

#[derive(Debug, Clone, Serialize)]
pub struct ConditionLane {
    #[serde(rename = "k")]
    pub kind: &'static str,
    #[serde(rename = "sp")]
    pub spans: Vec<Span<ConditionCell>>,
}

/// One effect of a decision: `[kind, text (index into strings), members it touches]`.
pub type EffectCell = (&'static str, u32, Vec<Ordinal>);

/// What was decided at one record.
#[derive(Debug, Clone, Serialize)]
pub struct Rec {
    /// Phase hint, as given to `decide`.
    #[serde(rename = "h")]
    pub hint: &'static str,
    #[serde(rename = "p")]
    pub phase: &'static str,
    /// The decision's summary (the rule's own words for why), index into strings.
    #[serde(rename = "s")]
    pub summary: u32,
    #[serde(rename = "e")]
    pub effects: Vec<EffectCell>,
    #[serde(rename = "q")]
    pub requeue_ms: Option<u64>,
}

/// Everything the page needs to draw one trace.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub title: String,
    /// Time of the first record (ms since the epoch, or simulated).
    pub start_ms: u64,
    /// Each record's time, in ms since the first.
    pub times: Vec<u64>,
    /// The spec (masters x replicas) at each change.
    pub specs: Vec<Span<String>>,
    pub lanes: Vec<Lane>,
    /// The slot map, 0..=16383, from each master's own claim.
    pub slots: Vec<Span<Vec<BandCell>>>,
    pub phases: Vec<Span<&'static str>>,
    pub conditions: Vec<ConditionLane>,
    /// Migrations in flight (only spans where some slot is open).
    pub moves: Vec<Span<Vec<MoveCell>>>,
    pub records: Vec<Rec>,
    pub notes: Vec<Note>,
    /// Summaries and effect texts, each once.
    pub strings: Vec<String>,
    /// For a what-if: the record where this timeline leaves the recorded one.
    pub diverged_at: Option<u32>,
}

/// Appends `value` for record `i` to `spans`, extending the last span when it is equal.
fn push<T: PartialEq>(spans: &mut Vec<Span<T>>, i: u32, value: T) {
    if let Some(last) = spans.last_mut()
        && last.to == i
        && last.value == value
    {
        last.to = i + 1;
        return;
    }
    spans.push(Span {
        from: i,
        to: i + 1,
        value,
    });
}

#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: BTreeMap<String, u32>,
}

impl Strings {
    fn id(&mut self, s: String) -> u32 {
        if let Some(&i) = self.index.get(&s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.index.insert(s.clone(), i);
        self.list.push(s);
        i
    }
}

/// Folds `records` (in time order) into a [`Timeline`]. `notes` are added to those derived
/// from the records (faults a simulator injected, differences a replay found).
pub fn build(title: &str, records: &[TraceRecord], notes: Vec<Note>) -> Timeline {
    let mut b = Builder::new(title, notes);
    for rec in records {
        b.push(rec);
    }
    b.finish()
}

/// [`build`] one record at a time, for traces too large to hold in memory.
pub struct Builder {
    t: Timeline,
    ids: Ids,
    strings: Strings,
    lanes: BTreeMap<Ordinal, Vec<Span<LaneState>>>,
    previous: BTreeMap<Ordinal, NodeAt>,
    conditions: BTreeMap<ConditionKind, Vec<Span<ConditionCell>>>,
    /// The slot map only changes when some master's claim does: computed again only then.
    last_claims: Option<Vec<(Ordinal, u64, Vec<engine::SlotRange>)>>,
    last_bands: Vec<BandCell>,
    seen: Seen,
}

/// History entries already noted: a failing effect (by effect and start), lost masters.
#[derive(Default)]
struct Seen {
    failure: Option<(String, u64)>,
    losses: Vec<(Ordinal, u64)>,
}

impl Builder {
    pub fn new(title: &str, notes: Vec<Note>) -> Self {
        Self {
            t: Timeline {
                title: title.to_string(),
                start_ms: 0,
                times: Vec::new(),
                specs: Vec::new(),
                lanes: Vec::new(),
                slots: Vec::new(),
                phases: Vec::new(),
                conditions: Vec::new(),
                moves: Vec::new(),
                records: Vec::new(),
                notes,
                strings: Vec::new(),
                diverged_at: None,
            },
            ids: Ids::default(),
            strings: Strings::default(),
            lanes: BTreeMap::new(),
            previous: BTreeMap::new(),
            conditions: BTreeMap::new(),
            last_claims: None,
            last_bands: Vec::new(),
            seen: Seen::default(),
        }
    }

    /// Adds the next record.
    pub fn push(&mut self, rec: &TraceRecord) {
        let t = &mut self.t;
        let i = t.records.len() as u32;
        if i == 0 {
            t.start_ms = rec.time;
        }
        self.ids.learn(rec);
        t.times.push(rec.time.saturating_sub(t.start_ms));
        push(
            &mut t.specs,
            i,
            format!("{} x {}", rec.spec.masters, rec.spec.replicas),
        );
        // A member seen for the first time gets its lane from here on (absent before).
        for &o in rec.observation.members.keys() {
            self.lanes.entry(o).or_default();
        }
        let flags = observe::flags(rec, &self.ids);
        for (&o, spans) in &mut self.lanes {
            let now = observe::node_at(rec, &self.ids, &flags, o);
            if let Some(before) = self.previous.get(&o) {
                failure_notes(&mut t.notes, i, o, before, &now);
            }
            extend_lane(spans, i, &now);
            self.previous.insert(o, now);
        }
        let claims = claims_of(rec);
        if self.last_claims.as_ref() != Some(&claims) {
            self.last_bands = observe::bands(rec)
                .into_iter()
                .map(
                    |Band {
                         start,
                         end,
                         owner,
                         contested,
                     }| (start, end, owner, contested),
                )
                .collect();
            self.last_claims = Some(claims);
        }
        push(&mut t.slots, i, self.last_bands.clone());
        push(&mut t.phases, i, rec.decision.phase.as_str());
        for c in &rec.decision.conditions {
            push(
                self.conditions.entry(c.kind).or_default(),
                i,
                (c.status, c.reason.clone(), c.message.clone()),
            );
        }
        let moves: Vec<MoveCell> = observe::moves(rec, &self.ids)
            .into_iter()
            .map(
                |Move {
                     from,
                     to,
                     slots,
                     keys_left,
                     keys_moved,
                 }| { (from, to, slots, keys_left, keys_moved) },
            )
            .collect();
        if !moves.is_empty() {
            push(&mut t.moves, i, moves);
        }
        history_notes(&mut t.notes, i, rec, &mut self.seen);
        let summary = self.strings.id(rec.decision.summary.clone());
        let strings = &mut self.strings;
        let effects = rec
            .decision
            .effects
            .iter()
            .map(|e| (e.kind(), strings.id(e.to_string()), observe::touched(e)))
            .collect();
        t.records.push(Rec {
            hint: rec.phase_hint.as_str(),
            phase: rec.decision.phase.as_str(),
            summary,
            effects,
            requeue_ms: rec.decision.requeue_ms,
        });
    }

    pub fn finish(self) -> Timeline {
        let mut t = self.t;
        t.lanes = self
            .lanes
            .into_iter()
            .map(|(ordinal, spans)| Lane { ordinal, spans })
            .collect();
        t.conditions = self
            .conditions
            .into_iter()
            .map(|(k, spans)| ConditionLane {
                kind: k.as_str(),
                spans,
            })
            .collect();
        t.notes.sort_by_key(|n| (n.index, n.kind, n.ordinal));
        t.strings = self.strings.list;
        t
    }
}

/// Each running master's own claim (ordinal, epoch, slots): when these are the same as at
/// the record before, so is the slot map.
fn claims_of(rec: &TraceRecord) -> Vec<(Ordinal, u64, Vec<engine::SlotRange>)> {
    rec.observation
        .members
        .iter()
        .filter(|(_, m)| m.running)
        .filter_map(|(&o, m)| {
            let me = m.redis.as_ref()?.myself()?;
            me.is_master()
                .then(|| (o, me.config_epoch, me.slots.clone()))
        })
        .collect()
}

fn extend_lane(spans: &mut Vec<Span<LaneState>>, i: u32, now: &NodeAt) {
    let state = LaneState {
        role: now.role.as_str(),
        group: now.group,
        slots: now.slots,
        flag: now.flag.as_str(),
        keys_first: now.keys,
        keys_last: now.keys,
    };
    if let Some(last) = spans.last_mut()
        && last.to == i
        && last.value.role == state.role
        && last.value.group == state.group
        && last.value.slots == state.slots
        && last.value.flag == state.flag
    {
        last.to = i + 1;
        last.value.keys_last = now.keys;
        return;
    }
    spans.push(Span {
        from: i,
        to: i + 1,
        value: state,
    });
}

/// A member that stops, stops answering, or is newly flagged failing.
fn failure_notes(notes: &mut Vec<Note>, i: u32, o: Ordinal, before: &NodeAt, now: &NodeAt) {
    let text = if now.role.is_failed() && now.role != before.role && before.role != Role::Absent {
        Some(match now.role {
            Role::Stopped => format!("#{o} stopped"),
            _ => format!("#{o} stopped answering"),
        })
    } else if now.flag > before.flag && now.flag != Flag::None {
        Some(format!(
            "#{o} flagged {} by another node",
            now.flag.as_str()
        ))
    } else if before.role.is_failed() && !now.role.is_failed() && now.role != Role::Absent {
        Some(format!("#{o} answers again as {}", now.role.as_str()))
    } else {
        None
    };
    if let Some(text) = text {
        notes.push(Note {
            index: i,
            ordinal: Some(o),
            kind: NoteKind::Failure,
            text,
        });
    }
}

/// An effect that started failing (once per run of failures) and masters that came back
/// empty (once each), from the history the shell handed the engine.
fn history_notes(notes: &mut Vec<Note>, i: u32, rec: &TraceRecord, seen: &mut Seen) {
    let history = &rec.observation.history;
    if let Some(f) = &history.failure {
        let key = (f.effect.to_string(), f.since_ms);
        if seen.failure.as_ref() != Some(&key) {
            notes.push(Note {
                index: i,
                ordinal: Some(f.effect.target()),
                kind: NoteKind::Stuck,
                text: format!("`{}` failed {} time(s): {}", f.effect, f.times, f.error),
            });
            seen.failure = Some(key);
        }
    }
    for loss in &history.losses {
        let key = (loss.ordinal, loss.at_ms);
        if !seen.losses.contains(&key) {
            seen.losses.push(key);
            notes.push(Note {
                index: i,
                ordinal: Some(loss.ordinal),
                kind: NoteKind::Stuck,
                text: loss.to_string(),
            });
        }
    }
}
