//! Starting a node in a cluster already formed (for simulations of large clusters).

use std::time::Instant;

use super::{Stack, StackConfig};
use crate::broadcast;
use crate::member::Member;
use crate::membership::Membership;
use crate::view::View;

impl Stack {
    /// The protocols of the node `local` in a cluster already formed, whose members `view`
    /// holds (see [`Membership::formed`]). The broadcast starts with the up members of the
    /// view as its members ([`broadcast::Input::FormedMembers`], the view shared, not copied);
    /// tables and singletons, which start with no member down, no replica and no activator,
    /// need no member list (a singleton registered later is seeded from the view).
    pub fn formed(
        config: StackConfig,
        local: Member,
        view: View,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        let members = broadcast::Input::FormedMembers(Box::new(view.clone()));
        let membership = Membership::formed(config.membership.clone(), local, view, rng_seed, now);
        let mut s = Self::with_membership(config, membership, rng_seed, now);
        s.broadcast.handle(now, members);
        s.drain(now);
        s
    }
}
