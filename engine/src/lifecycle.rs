//! The lifecycle as an explicit hierarchical state machine (statig), private behind `decide`.
//!
//! ```text
//!   forming { Pending, Bootstrapping }   operating { Ready, ScalingOut, ScalingIn,
//!                                                    ReplicaScaling, Recovering, Rolling }
//!   Deleting
//! ```
//!
//! Reconcile is level-triggered: `work.rs` reads the whole observation and proposes the next
//! work; the state handlers decide which phase that work belongs to and whether its effects are
//! accepted. Effects are only ever accepted by a handler reacting to the observation, never by
//! entry or exit actions. The stored phase is a hint used for two things: follow-up work stays
//! in the phase that caused it (replicas attached during a scale-out are part of it), and a
//! cluster that was operating never bootstraps in the same step it finds every node empty.

use crate::decision::{Condition, ConditionKind, Decision, Phase};
use crate::desired::Desired;
use crate::effect::Effect;
use crate::model::Observation;
use crate::work::{Kind, Work, work};
use crate::world::World;
use statig::prelude::*;

#[derive(Default)]
pub(crate) struct Lifecycle;

/// Handlers move proposed effects to `effects` when they accept the work.
#[derive(Default)]
pub(crate) struct Ctx {
    proposed: Vec<Effect>,
    effects: Vec<Effect>,
    note: Option<String>,
}

impl Ctx {
    fn accept(&mut self) {
        self.effects.append(&mut self.proposed);
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Observed(Kind),
}

#[state_machine(
    initial = "State::pending()",
    state(derive(Debug, Clone, Copy, PartialEq, Eq))
)]
impl Lifecycle {
    #[state(superstate = "forming")]
    fn pending(event: &Event) -> Outcome<State> {
        let _ = event;
        Super
    }

    #[state(superstate = "forming")]
    fn bootstrapping(context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            // Attaching replicas and introducing nodes finish the bootstrap.
            Event::Observed(Kind::Bootstrap | Kind::Replicas | Kind::ScaleOut) => {
                context.accept();
                Handled
            }
            _ => Super,
        }
    }

    #[superstate]
    fn forming(context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            Event::Observed(Kind::Create | Kind::Wait) => {
                context.accept();
                Handled
            }
            Event::Observed(Kind::Bootstrap) => {
                context.accept();
                Transition(State::bootstrapping())
            }
            Event::Observed(kind) => route(context, *kind),
        }
    }

    #[state(superstate = "operating")]
    fn ready(event: &Event) -> Outcome<State> {
        let _ = event;
        Super
    }

    #[state(superstate = "operating")]
    fn scaling_out(context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            Event::Observed(Kind::ScaleOut | Kind::Replicas) => {
                context.accept();
                Handled
            }
            _ => Super,
        }
    }

    #[state(superstate = "operating")]
    fn scaling_in(context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            Event::Observed(Kind::ScaleIn | Kind::Replicas) => {
                context.accept();
                Handled
            }
            _ => Super,
        }
    }

    #[state(superstate = "operating")]
    fn replica_scaling(context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            Event::Observed(Kind::Replicas) => {
                context.accept();
                Handled
            }
            _ => Super,
        }
    }

    #[state(superstate = "operating")]
    fn recovering(context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            Event::Observed(Kind::Recover) => {
                context.accept();
                Handled
            }
            _ => Super,
        }
    }

    #[state(superstate = "operating")]
    fn rolling(context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            Event::Observed(Kind::Roll) => {
                context.accept();
                Handled
            }
            _ => Super,
        }
    }

    #[superstate]
    fn operating(context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            // The cluster this phase speaks of is gone: every node is empty and knows no one.
            // Say so and go back to forming; bootstrapping waits for the next observation.
            Event::Observed(Kind::Bootstrap | Kind::Create) => {
                context.proposed.clear();
                context.note = Some(
                    "every node came back empty and alone: the previous cluster's data is gone; \
                     a new cluster will be created"
                        .into(),
                );
                Transition(State::pending())
            }
            Event::Observed(Kind::Wait) => {
                context.accept();
                Handled
            }
            Event::Observed(kind) => route(context, *kind),
        }
    }

    #[state]
    fn deleting(context: &mut Ctx, event: &Event) -> Outcome<State> {
        match event {
            Event::Observed(Kind::Delete) => {
                context.accept();
                Handled
            }
            // Deletion is final; nothing else is done while it runs.
            _ => {
                context.proposed.clear();
                Handled
            }
        }
    }
}

/// The phase that work belongs to when the current state does not own it.
fn route(context: &mut Ctx, kind: Kind) -> Outcome<State> {
    let target = match kind {
        Kind::Converged => State::ready(),
        Kind::Recover => State::recovering(),
        Kind::ScaleOut => State::scaling_out(),
        Kind::ScaleIn => State::scaling_in(),
        Kind::Replicas => State::replica_scaling(),
        Kind::Roll => State::rolling(),
        Kind::Delete => State::deleting(),
        Kind::Bootstrap => State::bootstrapping(),
        Kind::Create | Kind::Wait => State::pending(),
        // An invalid spec changes nothing, the phase included.
        Kind::Invalid => return Handled,
    };
    context.accept();
    Transition(target)
}

fn state_of(phase: Phase) -> State {
    match phase {
        Phase::Pending => State::pending(),
        Phase::Bootstrapping => State::bootstrapping(),
        Phase::Ready => State::ready(),
        Phase::ScalingOut => State::scaling_out(),
        Phase::ScalingIn => State::scaling_in(),
        Phase::ReplicaScaling => State::replica_scaling(),
        Phase::Recovering => State::recovering(),
        Phase::Rolling => State::rolling(),
        Phase::Deleting => State::deleting(),
    }
}

fn phase_of(state: &State) -> Phase {
    match state {
        State::Pending {} => Phase::Pending,
        State::Bootstrapping {} => Phase::Bootstrapping,
        State::Ready {} => Phase::Ready,
        State::ScalingOut {} => Phase::ScalingOut,
        State::ScalingIn {} => Phase::ScalingIn,
        State::ReplicaScaling {} => Phase::ReplicaScaling,
        State::Recovering {} => Phase::Recovering,
        State::Rolling {} => Phase::Rolling,
        State::Deleting {} => Phase::Deleting,
    }
}

pub(crate) fn decide(desired: &Desired, phase_hint: Phase, observation: &Observation) -> Decision {
    let world = World::new(desired, observation);
    let work = work(&world);
    let mut ctx = Ctx {
        proposed: work.effects.clone(),
        ..Ctx::default()
    };
    let mut machine = Lifecycle.uninitialized_state_machine();
    *machine.state_mut() = state_of(phase_hint);
    let mut machine = machine.init_with_context(&mut ctx);
    machine.handle_with_context(&Event::Observed(work.kind), &mut ctx);
    let phase = phase_of(machine.state());
    let summary = match &ctx.note {
        Some(note) => note.clone(),
        None => work.summary.clone(),
    };
    let requeue_ms = if ctx.note.is_some() {
        Some(0)
    } else {
        work.requeue_ms
    };
    Decision {
        phase,
        conditions: conditions(desired, &work, phase, &ctx.effects),
        effects: ctx.effects,
        requeue_ms,
        summary,
    }
}

fn conditions(desired: &Desired, work: &Work, phase: Phase, effects: &[Effect]) -> Vec<Condition> {
    let cond = |kind, status: bool, reason: &str, message: String| Condition {
        kind,
        status,
        reason: reason.to_string(),
        message,
    };
    let invalid = !desired.problems.is_empty();
    let degraded = !work.degraded.is_empty();
    // Ready means converged in this very observation, not merely "the phase is still Ready".
    // A rolling replacement is the one exception: it only runs on a whole cluster and replaces
    // one member at a time, so while every slot is served the cluster stays Ready.
    let converged = phase == Phase::Ready && work.kind == Kind::Converged;
    let rolling =
        phase == Phase::Rolling && matches!(work.kind, Kind::Roll | Kind::Wait) && work.serving;
    let ready = (converged || rolling) && !degraded && !invalid;
    let progressing = !effects.is_empty() || (work.kind != Kind::Converged && !invalid);
    vec![
        cond(
            ConditionKind::Ready,
            ready,
            if ready { "ClusterReady" } else { "NotReady" },
            if ready {
                work.summary.clone()
            } else {
                format!("phase {phase}: {}", work.summary)
            },
        ),
        cond(
            ConditionKind::Progressing,
            progressing && !invalid,
            if progressing { phase.as_str() } else { "Idle" },
            work.summary.clone(),
        ),
        // Data lost recently is reported without holding back Ready: the cluster serves,
        // but the user must hear that a master came back empty.
        cond(
            ConditionKind::Degraded,
            degraded || !work.losses.is_empty(),
            if degraded {
                "ClusterDegraded"
            } else if !work.losses.is_empty() {
                "DataLost"
            } else {
                "Healthy"
            },
            work.degraded
                .iter()
                .chain(&work.losses)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        ),
        cond(
            ConditionKind::Invalid,
            invalid,
            if invalid { "InvalidSpec" } else { "Valid" },
            desired.problems.join("; "),
        ),
    ]
}
