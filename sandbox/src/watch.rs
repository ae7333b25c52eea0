//! Watch streams: JSON lines of `{"type": ..., "object": ...}` from a resourceVersion, with
//! filters, bookmarks, timeouts and 410 Gone when history no longer reaches back far enough.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType, Since, Store, served};
use crate::table::{self, Include};

pub struct WatchRequest {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub since: Since,
    pub timeout: Duration,
    pub bookmarks: bool,
    /// Streaming lists: after the initial ADDED events, a bookmark annotated
    /// `k8s.io/initial-events-end`.
    pub initial_events_end: bool,
    pub bookmark_interval: Duration,
    /// Send each object as a one-row Table (kubectl get --watch).
    pub table: Option<Include>,
    /// Changes when a test cuts every watch stream.
    pub cut: tokio::sync::watch::Receiver<u64>,
}

struct State {
    req: WatchRequest,
    backlog: VecDeque<Arc<Change>>,
    receiver: broadcast::Receiver<Arc<Change>>,
    deadline: Instant,
    next_bookmark: Instant,
    last_rv: u64,
    pending_initial_end: bool,
    /// Column definitions go only with the first object event, as Kubernetes sends them.
    headers_sent: bool,
    done: bool,
}

/// The encoded events of one watch. A watch from a compacted version yields a single
/// ERROR event with a 410 Status, as Kubernetes does once the stream has started.
pub fn stream(store: &Store, req: WatchRequest) -> impl Stream<Item = Bytes> + Send + 'static {
    let start = store.watch_from(&req.rt, req.since);
    let now = Instant::now();
    let initial: Result<State, ApiError> = start.map(|(backlog, rv, receiver)| State {
        pending_initial_end: req.initial_events_end,
        deadline: now + req.timeout,
        next_bookmark: now + req.bookmark_interval,
        backlog: backlog.into(),
        receiver,
        last_rv: match req.since {
            Since::Version(v) => v,
            Since::Now => rv,
        },
        req,
        headers_sent: false,
        done: false,
    });
    let first_error = initial.as_ref().err().map(error_line);
    let state = initial.ok();
    futures_util::stream::unfold((state, first_error), |(state, first_error)| async move {
        if let Some(line) = first_error {
            return Some((line, (None, None)));
        }
        let mut state = state?;
        let line = next_line(&mut state).await?;
        Some((line, (Some(state), None)))
    })
}

async fn next_line(st: &mut State) -> Option<Bytes> {
    if st.done {
        return None;
    }
    while let Some(change) = st.backlog.pop_front() {
        st.last_rv = st.last_rv.max(change.rv);
        if let Some(line) = event_line(&st.req, &change, &mut st.headers_sent) {
            return Some(line);
        }
    }
    if st.pending_initial_end {
        st.pending_initial_end = false;
        return Some(bookmark(&st.req.rt, st.last_rv, true));
    }
    loop {
        let wake = if st.req.bookmarks {
            st.next_bookmark.min(st.deadline)
        } else {
            st.deadline
        };
        tokio::select! {
            received = st.receiver.recv() => match received {
                Ok(change) => {
                    if change.rv <= st.last_rv {
                        continue;
                    }
                    st.last_rv = change.rv;
                    if let Some(line) = event_line(&st.req, &change, &mut st.headers_sent) {
                        return Some(line);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // This watcher fell behind the channel; like a compacted history,
                    // the client has to list again.
                    st.done = true;
                    return Some(error_line(&ApiError::Expired("watch fell behind; too old resource version".into())));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = st.req.cut.changed() => {
                st.done = true;
                return None;
            }
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= st.deadline {
                    return None;
                }
                st.next_bookmark = Instant::now() + st.req.bookmark_interval;
                return Some(bookmark(&st.req.rt, st.last_rv, false));
            }
        }
    }
}

fn matches(req: &WatchRequest, obj: &Value) -> bool {
    req.namespace
        .as_deref()
        .is_none_or(|ns| crate::object::namespace(obj) == ns)
        && req.labels.matches(obj)
        && req.fields.matches(obj)
}

/// The line for one change as this watch sees it: an object that starts or stops matching
/// the filters is ADDED or DELETED for this watcher.
fn event_line(req: &WatchRequest, change: &Change, headers_sent: &mut bool) -> Option<Bytes> {
    let (group, plural) = req.rt.group_resource();
    if change.group != group || change.plural != plural {
        return None;
    }
    let now_matches = matches(req, &change.object);
    let ty = match change.kind {
        EventType::Added => now_matches.then_some(EventType::Added)?,
        EventType::Deleted => {
            let was = change.old.as_ref().is_none_or(|o| matches(req, o)) || now_matches;
            was.then_some(EventType::Deleted)?
        }
        EventType::Modified => {
            let was = change.old.as_ref().is_some_and(|o| matches(req, o));
            match (was, now_matches) {
                (true, true) => EventType::Modified,
                (false, true) => EventType::Added,
                (true, false) => EventType::Deleted,
                (false, false) => return None,
            }
        }
    };
    let obj = served(&req.rt, &change.object);
    let obj = match req.table {
        Some(include) => {
            let rv = crate::object::resource_version(&obj)
                .unwrap_or("")
                .to_string();
            let t = table::table(&req.rt, &[obj], &rv, include, !*headers_sent);
            *headers_sent = true;
            t
        }
        None => obj,
    };
    Some(line(json!({"type": ty.as_str(), "object": obj})))
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}}),
    )
}

fn error_line(err: &ApiError) -> Bytes {
    line(json!({"type": "ERROR", "object": err.to_status()}))
}

fn line(v: Value) -> Bytes {
    let mut text = v.to_string();
    text.push('\n');
    Bytes::from(text)
}
