//! The audit log: one entry per resource request, allowed or not, for tests to read.

use std::sync::{Mutex, MutexGuard};

use serde_json::{Value, json};

/// One request as the authorizer saw it, and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub user: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub allowed: bool,
    pub code: u16,
}

impl AuditEntry {
    pub fn to_json(&self) -> Value {
        json!({
            "user": self.user, "verb": self.verb, "group": self.group,
            "resource": self.resource, "subresource": self.subresource,
            "namespace": self.namespace, "name": self.name,
            "allowed": self.allowed, "code": self.code,
        })
    }
}

/// Keeps the most recent entries (older ones are dropped past `limit`).
pub struct AuditLog {
    entries: Mutex<Vec<AuditEntry>>,
    limit: usize,
}

impl AuditLog {
    pub fn new(limit: usize) -> AuditLog {
        AuditLog {
            entries: Mutex::new(Vec::new()),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<AuditEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, entry: AuditEntry) {
        let mut entries = self.lock();
        entries.push(entry);
        if entries.len() > self.limit {
            let excess = entries.len() - self.limit;
            entries.drain(..excess);
        }
    }

    pub fn entries(&self) -> Vec<AuditEntry> {
        self.lock().clone()
    }
}
