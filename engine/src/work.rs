//! The rules: from a [`World`], the next piece of work and its effects, in priority order.
//! Repairs come first, then master topology, then replicas, then removals, then live settings,
//! then the rolling replacement of members on an outdated configuration. A rule that needs a
//! calmer world (everyone reachable, gossip settled, no open slot) waits for it rather than
//! acting on a partial picture.

use crate::bootstrap::bootstrap;
use crate::claims::outdated_claims;
use crate::effect::Effect;
use crate::failover::failed_masters;
use crate::gossip::meet;
use crate::history::STUCK_AFTER;
use crate::membership::{forget_ghosts, members, remove_leaving};
use crate::replacement::{Rolling, rolling};
use crate::replicas::{early_replicas, replicas};
use crate::topology::masters;
use crate::unclaimed::unclaimed_slots;
use crate::world::World;

/// What kind of work the rules found; the lifecycle maps it to a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Invalid,
    Delete,
    /// Members are being created; no cluster exists yet.
    Create,
    Bootstrap,
    Recover,
    ScaleOut,
    ScaleIn,
    Replicas,
    /// A member restarted with the desired configuration, or a master handing its slots to a
    /// replica first (rolling replacement).
    Roll,
    /// Nothing to do but wait for the world to settle.
    Wait,
    Converged,
}

#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub kind: Kind,
    pub effects: Vec<Effect>,
    pub summary: String,
    /// Problems the operator cannot fix by itself (lost slots, foreign nodes, ...).
    pub degraded: Vec<String>,
    /// Data lost recently (masters that came back empty); reported, never blocking.
    pub losses: Vec<String>,
    pub requeue_ms: Option<u64>,
    /// Every slot is served by a master that answers (see `World::serves_every_slot`): a
    /// rolling replacement keeps the cluster `Ready` while this holds.
    pub serving: bool,
}

/// Short wait while something settles (gossip, a node starting).
const SETTLE_MS: u64 = 500;
/// Re-check a converged cluster this often.
const HEALTH_CHECK_MS: u64 = 10_000;

impl Work {
    pub(crate) fn new(kind: Kind, effects: Vec<Effect>, summary: impl Into<String>) -> Self {
        let requeue_ms = match kind {
            Kind::Invalid => None,
            Kind::Converged => Some(HEALTH_CHECK_MS),
            _ => Some(SETTLE_MS),
        };
        Self {
            kind,
            effects,
            summary: summary.into(),
            degraded: Vec::new(),
            losses: Vec::new(),
            requeue_ms,
            serving: false,
        }
    }

    pub(crate) fn wait(summary: impl Into<String>) -> Self {
        Self::new(Kind::Wait, Vec::new(), summary)
    }
}

pub(crate) fn work(w: &World) -> Work {
    let mut degraded = Vec::new();
    let mut out = rules(w, &mut degraded);
    // Whatever else is done, every new process that may safely serve replicas is let serve
    // them first: a replica attached below, or promoted by Redis later, needs it.
    if !matches!(out.kind, Kind::Invalid | Kind::Delete) {
        let gates = crate::replication_gate::gates_to_open(w.obs);
        out.effects.splice(0..0, gates);
    }
    out.degraded.extend(degraded);
    stuck(w, &mut out);
    out.serving = w.serves_every_slot();
    out.losses = w
        .obs
        .history
        .losses
        .iter()
        .map(ToString::to_string)
        .collect();
    out
}

/// Longest wait between two attempts of an effect that keeps failing.
const MAX_BACKOFF_MS: u64 = 30_000;

/// An effect decided again after failing [`STUCK_AFTER`] passes in a row is named in
/// `Degraded` with its error, and tried again less and less often: the rules take another
/// path where one exists (they see the same world the failure left), and where none does a
/// person has to know.
fn stuck(w: &World, out: &mut Work) {
    let Some(f) = &w.obs.history.failure else {
        return;
    };
    if f.times < STUCK_AFTER || !out.effects.contains(&f.effect) {
        return;
    }
    // No count or duration in the message: it would change every pass (a new status write,
    // a new log line) while nothing else does.
    out.degraded.push(format!(
        "stuck: `{}` keeps failing since {}: {}",
        f.effect,
        crate::history::utc(f.since_ms),
        f.error
    ));
    let doublings = (f.times - STUCK_AFTER + 1).min(16);
    out.requeue_ms = Some((SETTLE_MS << doublings).min(MAX_BACKOFF_MS));
}

fn rules(w: &World, degraded: &mut Vec<String>) -> Work {
    let d = w.desired;
    if !d.problems.is_empty() {
        return Work::new(
            Kind::Invalid,
            Vec::new(),
            format!("spec is invalid: {}", d.problems.join("; ")),
        );
    }
    if d.deleting {
        let effects: Vec<Effect> = w
            .obs
            .members
            .keys()
            .flat_map(|&ordinal| crate::membership::delete_for_good(ordinal))
            .collect();
        let n = w.obs.members.len();
        return Work::new(Kind::Delete, effects, format!("deleting {n} nodes"));
    }
    if let Some(work) = members(w) {
        return work;
    }
    if !w.cluster_exists() {
        return bootstrap(w);
    }
    let forced = crate::replication_gate::same_node_returned_with_less(w.obs);
    if !forced.is_empty() {
        let mut work = Work::new(
            Kind::Recover,
            forced,
            "a master restarted with fewer keys than its replica holds: promoting the replica",
        );
        // An election takes time; asking again restarts it.
        work.requeue_ms = Some(d.node_timeout_ms);
        return work;
    }
    if let Some(work) = meet(w, degraded) {
        return work;
    }
    if !w.gossip_settled() {
        // A member restarted as a new node leaves its old id behind as a failed ghost; it is
        // forgotten while gossip still spreads the new one (nothing about the ghost depends on
        // who knows the new node), and the new node, empty, joins its master meanwhile.
        return match (forget_ghosts(w), early_replicas(w)) {
            (Some(mut ghosts), Some(early)) => {
                ghosts.effects.extend(early.effects);
                ghosts.summary = format!("{}; {}", ghosts.summary, early.summary);
                ghosts.requeue_ms = early.requeue_ms;
                ghosts
            }
            (ghosts, early) => ghosts.or(early).unwrap_or_else(|| {
                announce(
                    w,
                    Work::wait("waiting for every node to know every other node"),
                )
            }),
        };
    }
    if let Some(work) = forget_ghosts(w) {
        return work;
    }
    if let Some(work) = unclaimed_slots(w, degraded) {
        return work;
    }
    if let Some(work) = crate::repair::repair_open_slots(w, degraded) {
        return work;
    }
    if let Some(work) = outdated_claims(w) {
        return work;
    }
    if let Some(work) = failed_masters(w, degraded) {
        return work;
    }
    if !w.all_in_range_reachable() {
        let missing: Vec<String> = (0..w.total())
            .filter(|o| !w.reachable.contains_key(o))
            .map(|o| format!("#{o}"))
            .collect();
        return Work::wait(format!(
            "waiting for nodes {} to answer",
            missing.join(", ")
        ));
    }
    if let Some(work) = masters(w) {
        // An interrupted move is repaired before any other starts, as `redis-cli --cluster
        // rebalance` refuses to run with open slots. Stray keys of a half-moved slot may sit on
        // a master the plan would drain: once it gives away its last slot (or hands over by
        // failover) Redis makes it a replica, whose first sync discards them (simulator seed
        // 20331). While the repair waits (a node down, a replica syncing), so do the moves.
        let open = w.open_slots();
        if !open.is_empty() {
            let mut wait = Work::wait(format!(
                "{} (held back: {} slot(s) still open from an interrupted migration)",
                work.summary,
                open.len()
            ));
            wait.kind = Kind::Recover;
            return wait;
        }
        if work
            .effects
            .iter()
            .any(|e| matches!(e, Effect::MigrateSlots { .. }))
            && let Some(mut settle) = crate::claims::tied_epochs(w)
        {
            // Part of the scaling, as a wait for gossip is: the phase stays.
            settle.kind = work.kind;
            return settle;
        }
        return work;
    }
    let mut effects = replicas(w, degraded);
    let replica_work = !effects.is_empty();
    let (removals, removed_masters) = remove_leaving(w);
    effects.extend(removals);
    if !effects.is_empty() {
        let kind = if removed_masters {
            Kind::ScaleIn
        } else {
            Kind::Replicas
        };
        let n = effects.len();
        let what = match (replica_work, kind == Kind::ScaleIn) {
            (true, _) => "attaching replicas",
            (false, true) => "removing drained masters",
            (false, false) => "removing surplus replicas",
        };
        return Work::new(kind, effects, format!("{what} ({n} steps)"));
    }
    if let Some(work) = crate::reconfigure::live_settings(w) {
        return work;
    }
    // Replacing members needs a whole cluster, which a cluster needing attention is not.
    if degraded.is_empty() {
        match rolling(w, unsettled(w)) {
            Rolling::UpToDate => {}
            Rolling::Step(work) => return work,
            Rolling::Refused(why) => {
                let mut work = converged(w, degraded);
                work.summary = format!("{}; {why}", work.summary);
                return work;
            }
        }
    }
    converged(w, degraded)
}

/// A wait for gossip, with the nodes whose news has not reached some view told to send it now
/// (see [`crate::gossip::announcements`]).
fn announce(w: &World, mut wait: Work) -> Work {
    let effects = crate::gossip::announcements(w);
    if !effects.is_empty() {
        wait.summary = format!(
            "{}; announcing {} node(s) to views that lag",
            wait.summary,
            effects.len()
        );
        wait.effects = effects;
        wait.requeue_ms = Some(crate::gossip::recheck_ms(w));
    }
    wait
}

/// Why the cluster has not converged yet, if it has not: `cluster_state`, slot map and roles
/// agreed everywhere, every replica's first sync done.
fn unsettled(w: &World) -> Option<String> {
    let not_ok: Vec<String> = w
        .reachable
        .iter()
        .filter(|(_, (_, _, s))| !s.cluster_ok)
        .map(|(o, _)| format!("#{o}"))
        .collect();
    if !not_ok.is_empty() {
        return Some(format!(
            "waiting for cluster_state:ok on {}",
            not_ok.join(", ")
        ));
    }
    if !w.slots_agreed {
        return Some("waiting for every node to agree on the slot map".to_string());
    }
    if !w.roles_agreed() {
        return Some("waiting for every node to agree on who replicates whom".to_string());
    }
    // A replica is a copy only once its first sync finished (Redis may delay it by seconds).
    let syncing: Vec<String> = w
        .reachable
        .iter()
        .filter(|(o, (_, _, s))| {
            w.me(**o).is_some_and(|me| me.master_id.is_some()) && !s.master_link_up
        })
        .map(|(o, _)| format!("#{o}"))
        .collect();
    if !syncing.is_empty() {
        return Some(format!(
            "waiting for replicas {} to sync",
            syncing.join(", ")
        ));
    }
    None
}

fn converged(w: &World, degraded: &[String]) -> Work {
    if let Some(reason) = unsettled(w) {
        return announce(w, Work::wait(reason));
    }
    if !degraded.is_empty() {
        return Work::wait("cluster serves every slot but needs attention");
    }
    Work::new(
        Kind::Converged,
        Vec::new(),
        format!(
            "cluster is ready: {} masters x {} replicas",
            w.desired.masters, w.desired.replicas
        ),
    )
}
