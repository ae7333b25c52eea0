//! Whether a forced election of a dead master's replica can win, judged the way Redis' voters
//! judge it (`clusterSendFailoverAuthIfNeeded` in Redis 7.0), from what every node shows.
//!
//! A forced election that loses is not free: the replica starts no other election, neither
//! forced nor Redis' own automatic one, until its retry time has passed (twice its auth
//! timeout: 4 node timeouts, 20 s at 5 s), while Redis alone would have elected it about a
//! node timeout after the death. So the early path forces only an election the voters will
//! grant, and takes over without a vote when no election can ever be granted.

use crate::model::{LinkState, Ordinal};
use crate::world::World;

/// What the voters would make of a forced vote request from replica `best` of the dead
/// master `master_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vote {
    /// Every voter (every reachable master that owns slots) would grant it.
    Granted,
    /// Some voter would refuse it now, for a reason gossip soon removes (a link being set
    /// up, an epoch not heard of yet, a replica not known yet).
    NotYet,
    /// Some voter would refuse it for as long as the master stays dead: the candidate's view
    /// gives its master an older config epoch than the voter's, and only the master itself
    /// could tell it the newer one (no other message carries another node's epoch). Redis'
    /// own automatic election is refused the same way, for ever.
    Never,
}

/// How the voters answer a forced request of `best` for `master_id` (see [`Vote`]).
pub(crate) fn forced_vote(w: &World, master_id: &str, best: Ordinal) -> Vote {
    let (Some(best_id), Some(mine)) = (w.id_of.get(&best).copied(), w.state(best)) else {
        return Vote::NotYet;
    };
    // The request carries the slots and the config epoch the candidate's view gives its
    // master; a voter refuses when it knows a newer epoch for any of those slots.
    let claimed = w.view(best, master_id).map_or(0, |e| e.config_epoch);
    let mut vote = Vote::Granted;
    for voter_id in w.slots_by_owner().keys().copied() {
        if voter_id == master_id {
            continue;
        }
        let Some(voter) = w.nodes.get(voter_id).filter(|n| n.reachable) else {
            continue;
        };
        let Some(v) = voter.ordinal else {
            return Vote::NotYet;
        };
        let Some(theirs) = w.state(v) else {
            return Vote::NotYet;
        };
        if w.view(v, master_id)
            .is_some_and(|e| e.config_epoch > claimed)
        {
            return Vote::Never;
        }
        // The request's epoch is the candidate's current epoch plus one: a voter at a higher
        // epoch refuses it, and one at that very epoch may already have voted in it.
        let epoch_ok = mine.current_epoch >= theirs.current_epoch;
        // The voter must know the candidate as a replica of this master, and each must
        // have a bus link to the other: the request goes out on the candidate's links, the
        // vote on the voter's (a vote granted over no link is spent and never arrives).
        let knows = w.view(v, best_id).is_some_and(|e| {
            e.master_id.as_deref() == Some(master_id)
                && e.link == LinkState::Connected
                && !e.flags.handshake
        });
        let linked = w
            .view(best, voter_id)
            .is_some_and(|e| e.link == LinkState::Connected && !e.flags.handshake);
        if !(epoch_ok && knows && linked) {
            vote = Vote::NotYet;
        }
    }
    vote
}

/// `CLUSTER FAILOVER TAKEOVER` on `best` claims its master's slots under a config epoch above
/// every epoch it knows (its current epoch plus one, at least), without a vote. That claim wins
/// in every view only when no view gives the master a config epoch above `best`'s current
/// epoch.
pub(crate) fn takeover_wins(w: &World, master_id: &str, best: Ordinal) -> bool {
    let Some(mine) = w.state(best) else {
        return false;
    };
    w.reachable.keys().all(|o| {
        w.view(*o, master_id)
            .is_none_or(|e| e.config_epoch <= mine.current_epoch)
    })
}
