//! Saving and restoring the store's objects (the `--state-dir` file).

use serde_json::{Value, json};

use super::Store;
use crate::{crd, events, object};

impl Store {
    /// The state file's content: every object and the current version.
    pub fn to_state(&self) -> Value {
        let mut inner = self.lock();
        inner.dirty = false;
        let objects: Vec<Value> = inner
            .objects
            .iter()
            .map(|((g, r, _, _), o)| json!({"group": g, "resource": r, "object": o}))
            .collect();
        json!({"resourceVersion": inner.rv, "objects": objects})
    }

    pub fn is_dirty(&self) -> bool {
        self.lock().dirty
    }

    /// Restores objects saved by [`Store::to_state`]; CRDs come first so their resources
    /// are served again.
    pub fn load_state(&self, state: &Value) {
        let mut inner = self.lock();
        inner.rv = state["resourceVersion"].as_u64().unwrap_or(0);
        inner.compacted = inner.rv;
        let entries = state["objects"].as_array().cloned().unwrap_or_default();
        for e in &entries {
            let (Some(g), Some(r)) = (e["group"].as_str(), e["resource"].as_str()) else {
                continue;
            };
            let mut obj = e["object"].clone();
            let mut g = g;
            if g == events::GROUP
                && let Some(view) = inner.registry.find(events::GROUP, "v1", r).cloned()
                && events::is_view(&view)
            {
                // State saved before Events were stored once: keep them in the core form.
                obj = events::to_storage(&view, obj);
                g = "";
            }
            if g == "apiextensions.k8s.io" && r == "customresourcedefinitions" {
                for rt in crd::resource_types(&obj).unwrap_or_default() {
                    inner.registry.upsert(rt);
                }
            }
            let k = (
                g.to_string(),
                r.to_string(),
                object::namespace(&obj).to_string(),
                object::name(&obj).to_string(),
            );
            inner.uids.insert(object::uid(&obj).to_string(), k.clone());
            inner.objects.insert(k, obj);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_events_k8s_io_event_from_an_older_state_file_loads_as_the_one_core_event() {
        let store = Store::new(100);
        store.load_state(&json!({"resourceVersion": 7, "objects": [{
            "group": "events.k8s.io", "resource": "events",
            "object": {
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "default", "uid": "u1", "resourceVersion": "7"},
                "regarding": {"kind": "ConfigMap", "name": "c"}, "note": "saved",
            },
        }]}));
        let registry = store.registry();
        let core = registry.find("", "v1", "events").unwrap();
        let view = registry.find(events::GROUP, "v1", "events").unwrap();
        let stored = store.get(core, "default", "e").unwrap();
        assert_eq!(stored["message"], "saved");
        assert_eq!(stored["involvedObject"]["name"], "c");
        assert_eq!(store.get(view, "default", "e").unwrap()["note"], "saved");
    }
}
