//! Commands to a simulated node (broadcasts, table, singleton and messaging inputs, joins)
//! and what a test or scenario reads of the nodes (members as each sees them, connections,
//! tables, singletons).

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ensemble_proto::broadcast::events::{EventInput, USER_EVENTS};
use ensemble_proto::broadcast::{self, Plumtree};
use ensemble_proto::stack::{Input, Output};
use ensemble_proto::table::{self, Store};
use ensemble_proto::{membership, messaging, query, singleton, Member, Status};

use super::{pair, NodeId, Sim, SimEvent, SimUserEvent};

impl Sim {
    /// Hands a running node an input at once (paused or not, as a local API call would be),
    /// then carries out what it yields. None if the node is not running.
    fn call(&mut self, id: NodeId, input: Input) -> Option<()> {
        let now = self.now;
        self.nodes[id].state.as_mut()?.handle(now, input);
        self.after_input(id);
        Some(())
    }

    /// Broadcasts a user event with `payload` from node `id`; returns its message id, or None
    /// if the node is crashed or hung.
    pub fn broadcast(&mut self, id: NodeId, payload: Bytes) -> Option<Bytes> {
        if self.nodes[id].paused {
            return None;
        }
        let input = EventInput {
            name: "sim".into(),
            payload,
        };
        let input = broadcast::Input::Broadcast {
            token: 0,
            handler: USER_EVENTS.into(),
            msg: input.encode(),
        };
        self.broadcast_answer = None;
        self.call(id, Input::Broadcast(input))?;
        match self.broadcast_answer.take()? {
            Ok(broadcast::Reply::Broadcast(msg_id)) => Some(msg_id),
            _ => None,
        }
    }

    /// Starts keeping the user events the nodes deliver (in order, as an application sees
    /// them), from now on; [`Sim::user_events`] reads them.
    pub fn record_user_events(&mut self) {
        let mut v = self.user_events.lock().expect("not poisoned");
        v.get_or_insert_with(Vec::new);
    }

    /// The user events delivered since [`Sim::record_user_events`], in delivery order.
    pub fn user_events(&self) -> Vec<SimUserEvent> {
        let v = self.user_events.lock().expect("not poisoned");
        v.clone().unwrap_or_default()
    }

    /// The broadcast protocol of a running node.
    pub fn plumtree(&self, id: NodeId) -> Option<&Plumtree> {
        Some(self.nodes[id].state.as_ref()?.broadcast())
    }

    /// Gives a running node a table input (create, write, join...), then carries out what it
    /// yields; answers arrive in [`Sim::table_outputs`]. None if the node is not running.
    pub fn table(&mut self, id: NodeId, input: table::Input) -> Option<()> {
        self.call(id, Input::Table(input))
    }

    /// Gives a running node a singleton input (register, unregister), then carries out what it
    /// yields; answers arrive in [`Sim::singleton_answers`]. None if the node is not running.
    pub fn singleton(&mut self, id: NodeId, input: singleton::Input) -> Option<()> {
        self.call(id, Input::Singleton(input))
    }

    /// A singleton as a running node sees it.
    pub fn singleton_info(&self, id: NodeId, name: &str) -> Option<singleton::SingletonInfo> {
        self.nodes[id].state.as_ref()?.singletons().info(name)
    }

    /// A table's replica on a running node: its records, shared for reads.
    pub fn table_store(&self, id: NodeId, table: &str) -> Option<Arc<RwLock<Store>>> {
        self.nodes[id].state.as_ref()?.tables().store(table)
    }

    /// The records of a table's replica on a running node.
    pub fn table_records(&self, id: NodeId, table: &str) -> Option<Vec<table::Record>> {
        let store = self.table_store(id, table)?;
        let records = store.read().unwrap_or_else(|e| e.into_inner()).records();
        Some(records)
    }

    /// A table's replica state on a running node.
    pub fn table_info(&self, id: NodeId, table: &str) -> Option<table::TableInfo> {
        self.nodes[id].state.as_ref()?.tables().info(table)
    }

    /// Gives a running node a named-messaging input (register a name, send a message).
    pub fn messaging(&mut self, id: NodeId, input: messaging::Input) {
        self.call(id, Input::Messaging(input));
    }

    /// Gives a running node a query input (start a query, answer one).
    pub fn query(&mut self, id: NodeId, input: query::Input) {
        self.call(id, Input::Query(input));
    }

    /// Named messages relayed for others and dropped for lack of a route, summed over nodes.
    pub fn relay_counts(&self) -> (u64, u64) {
        let stacks = self.nodes.iter().filter_map(|n| n.state.as_ref());
        stacks.fold((0, 0), |(r, d), s| {
            let (r2, d2) = s.relay_counts();
            (r + r2, d + d2)
        })
    }

    /// The members one running node holds connections to.
    pub fn peers_of(&self, id: NodeId) -> Vec<&str> {
        let s = self.nodes[id].state.as_ref();
        s.map_or(Vec::new(), |s| s.membership().connected().collect())
    }

    /// Who dialled the open connection between `a` and `b`, if there is one.
    pub fn dialer(&self, a: NodeId, b: NodeId) -> Option<NodeId> {
        let link = self.links.get(&pair(a, b))?;
        self.dialers.get(link).copied()
    }

    /// Gives a node a membership command (leave, remove, tags).
    pub fn command(&mut self, id: NodeId, input: membership::Input) {
        self.input(id, Input::Membership(input));
    }

    /// Has node `id` join node `to`, as the runtime does: the join input, and a dial at once.
    pub fn join(&mut self, id: NodeId, to: NodeId) {
        let addr = self.nodes[to].addr;
        self.input(id, Input::Membership(membership::Input::Join { addr }));
        if self.running(id) {
            self.output(id, Output::Dial { addr });
        }
    }

    /// The node's name.
    pub fn name(&self, id: NodeId) -> &str {
        &self.nodes[id].name
    }

    /// How node `observer` sees `name`, if it is running and knows it.
    pub fn seen(&self, observer: NodeId, name: &str) -> Option<&Member> {
        self.nodes[observer]
            .state
            .as_ref()?
            .membership()
            .member(name)
    }

    /// The status `observer` holds for node `id`.
    pub fn status(&self, observer: NodeId, id: NodeId) -> Option<Status> {
        self.seen(observer, &self.nodes[id].name).map(|m| m.status)
    }

    /// The node's own incarnation, if running.
    pub fn incarnation(&self, id: NodeId) -> Option<u64> {
        Some(
            self.nodes[id]
                .state
                .as_ref()?
                .membership()
                .local()
                .incarnation,
        )
    }

    /// Ids of running, unpaused nodes.
    pub fn live(&self) -> Vec<NodeId> {
        (0..self.nodes.len())
            .filter(|i| self.running(*i) && !self.nodes[*i].paused)
            .collect()
    }

    /// True if every live node sees every node in `ids` with status `status`.
    pub fn all_see(&self, ids: &[NodeId], status: Status) -> bool {
        self.live().iter().all(|o| {
            ids.iter()
                .filter(|i| *i != o)
                .all(|i| self.status(*o, *i) == Some(status))
        })
    }

    /// Events reported so far.
    pub fn events(&self) -> &[SimEvent] {
        &self.events
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// True if every live node counts exactly `n` members up (itself included).
    pub fn all_count_up(&self, n: usize) -> bool {
        self.nodes
            .iter()
            .filter(|node| !node.paused)
            .filter_map(|node| node.state.as_ref())
            .all(|m| m.membership().up_count() == n)
    }

    /// The largest estimated state size of one node, in bytes.
    pub fn max_state_bytes(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.state.as_ref())
            .map(|s| s.membership().estimated_bytes())
            .max()
            .unwrap_or(0)
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.links.len()
    }
}
