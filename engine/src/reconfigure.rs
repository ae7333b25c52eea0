//! Settings Redis applies without a restart: a running node whose value differs from the spec's
//! gets `CONFIG SET`, once the cluster has nothing else to do.

use crate::effect::Effect;
use crate::work::{Kind, Work};
use crate::world::World;

/// `CONFIG SET` for every reachable member whose observed value of a desired live setting
/// differs. A setting the node did not report (an older trace, a server without it) is left
/// alone: there is nothing to compare with.
pub(crate) fn live_settings(w: &World) -> Option<Work> {
    let wanted = &w.desired.live_config;
    if wanted.is_empty() {
        return None;
    }
    let mut effects = Vec::new();
    for (&on, (_, _, state)) in &w.reachable {
        for (name, value) in wanted {
            if state.config.get(name).is_some_and(|now| now != value) {
                effects.push(Effect::SetConfig {
                    on,
                    name: name.clone(),
                    value: value.clone(),
                });
            }
        }
    }
    if effects.is_empty() {
        return None;
    }
    let names: std::collections::BTreeSet<&str> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::SetConfig { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let summary = format!(
        "applying {} on {} node(s) without a restart",
        names.into_iter().collect::<Vec<_>>().join(", "),
        effects
            .iter()
            .map(Effect::target)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    // The cluster serves every slot meanwhile: it stays Ready while this is applied.
    Some(Work::new(Kind::Converged, effects, summary))
}
