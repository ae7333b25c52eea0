//! Kubernetes Events for what a pass changed: one per transition, never one per pass.

use controller::status::{EventType, Transition};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder};

/// An event's note is at most 1 KiB in the Events API.
const NOTE_LIMIT: usize = 1024;

/// Publishes `transitions` about `regarding`; a failure to publish is logged, never fatal
/// (events are for people, the status is the record).
pub async fn publish(recorder: &Recorder, regarding: &ObjectReference, transitions: &[Transition]) {
    for t in transitions {
        let event = Event {
            type_: match t.kind {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: t.reason.chars().take(128).collect(),
            note: Some(cut(&t.note)),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, regarding).await {
            tracing::warn!(reason = %t.reason, error = %e, "cannot publish an event");
        }
    }
}

fn cut(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_string();
    }
    let mut end = NOTE_LIMIT - 3;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_note_is_cut_to_the_events_api_limit_on_a_character_boundary() {
        let note = "é".repeat(1000);
        let out = cut(&note);
        assert!(out.len() <= NOTE_LIMIT && out.ends_with("..."));
    }
}
