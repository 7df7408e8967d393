//! Who made this node mark each member `suspect` the last time it did: its own probes, or the
//! peer whose message carried the suspicion. Read-only for the runtime
//! ([`Membership::accusation`]); one entry per member of the view at most, dropped with the
//! member's tombstone, so it is bounded by the view.

use super::{Membership, Origin};
use crate::member::{NodeName, Status};
use crate::view::Transition;

/// Who made this node mark a member `suspect`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Accuser {
    /// This node itself: its detector stopped hearing the member and its probes (and their
    /// helpers) could not reach it.
    Local,
    /// A peer told it: the sender of the gossip or anti-entropy message that carried the
    /// suspicion (which may have heard it from another).
    Peer(NodeName),
}

/// The last suspicion of a member in this node's view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accusation {
    /// The member's incarnation when it became suspect.
    pub incarnation: u64,
    /// Who made this node suspect it.
    pub accuser: Accuser,
}

impl Membership {
    /// The last time this node marked `name` suspect, and who made it (kept after the member
    /// refuted or went down, until a new suspicion or its tombstone goes).
    pub fn accusation(&self, name: &str) -> Option<&Accusation> {
        self.accusations.get(name)
    }

    /// Every member this node has marked suspect, with its last suspicion.
    pub fn accusations(&self) -> impl Iterator<Item = (&str, &Accusation)> {
        self.accusations.iter().map(|(n, a)| (n.as_str(), a))
    }

    /// Notes who caused `t` if it makes a member suspect (or suspect at a new incarnation).
    pub(super) fn note_accuser(&mut self, t: &Transition, origin: &Origin) {
        if t.new.status != Status::Suspect {
            return;
        }
        let name = &t.new.name;
        let known = self
            .accusations
            .get(name)
            .is_some_and(|a| a.incarnation == t.new.incarnation);
        let was_suspect = t
            .old
            .as_ref()
            .is_some_and(|o| o.status == Status::Suspect && o.incarnation == t.new.incarnation);
        if known && was_suspect {
            return;
        }
        let accuser = match origin {
            Origin::Local => Accuser::Local,
            Origin::Remote(from) | Origin::Quiet(from) => Accuser::Peer(from.clone()),
        };
        let incarnation = t.new.incarnation;
        (self.accusations).insert(
            name.clone(),
            Accusation {
                incarnation,
                accuser,
            },
        );
    }
}
