//! When a soak's cluster counts as healthy, when a change is in its risky part, and the final
//! `redis-cli --cluster check`: one definition for every kind of cluster the soak runs.

use crate::commands::local::Judgement;
use engine::Phase;
use std::process::Command;

/// Healthy: the engine, looking at the cluster now with the spec in force, has nothing to do
/// (every member runs and answers, the shape and configuration are the wanted ones, every
/// view agrees, no slot is open), nothing is degraded, every node says `cluster_state:ok`
/// and every replica's link to its master is up (a restarted replica is not healthy until
/// its sync finished: until then its shard has no copy).
pub(super) fn healthy(j: &Judgement) -> bool {
    let nodes_ok = j.observation.members.values().all(|m| {
        m.redis.as_ref().is_some_and(|s| {
            s.cluster_ok && (s.myself().is_some_and(|me| me.is_master()) || s.master_link_up)
        })
    });
    nodes_ok && engine_has_nothing_to_do(j)
}

fn engine_has_nothing_to_do(j: &Judgement) -> bool {
    let d = &j.decision;
    d.phase == Phase::Ready
        && d.effects.is_empty()
        && d.is_true(engine::ConditionKind::Ready)
        && !d.is_true(engine::ConditionKind::Degraded)
        && j.observation.members.len() == (j.desired.masters * (1 + j.desired.replicas)) as usize
        && j.observation
            .members
            .values()
            .all(|m| m.running && m.redis.is_some())
}

/// Whether a change is in its risky part: a slot open somewhere (a migration), or some but
/// not all members on the configuration wanted (a rolling replacement).
pub(super) fn in_progress(j: &Judgement) -> (bool, bool) {
    let migrating = j.observation.members.values().any(|m| {
        m.redis
            .as_ref()
            .and_then(|s| s.myself())
            .is_some_and(|me| !me.open_slots.is_empty())
    });
    let wanted = j.desired.fingerprint.as_deref();
    let renewed = j
        .observation
        .members
        .values()
        .filter(|m| m.fingerprint.as_deref() == wanted)
        .count();
    let rolling = renewed > 0 && renewed < j.observation.members.len();
    (migrating, rolling)
}

/// `redis-cli --cluster check` on `addr` (`host:port`): `Ok` when every slot is covered and it reports no
/// error or warning, else its output.
pub(super) fn cluster_check(addr: &str, password: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new("redis-cli");
    if let Some(pw) = password {
        // Through the environment, never on the command line (`ps` shows arguments).
        cmd.env("REDISCLI_AUTH", pw);
    }
    let out = cmd
        .args(["--cluster", "check", addr])
        .output()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success()
        && text.contains("[OK] All 16384 slots covered")
        && !text.contains("[ERR]")
        && !text.contains("[WARNING]")
    {
        Ok(())
    } else {
        Err(text)
    }
}
