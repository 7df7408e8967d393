//! A cluster that starts formed (`Sim::formed`): full views that share their storage, and
//! failure detection as after a join storm. One test in this binary, so that the allocation
//! counter below sees no other test's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use std::sync::Arc;

use ensemble_proto::view::View;
use ensemble_proto::{EventKind, Member, Status, Tags};
use ensemble_sim::{Sim, SimConfig};

/// Bytes currently allocated by the process.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes a formed cluster of `n` nodes holds right after it starts.
fn bytes_of_formed(n: usize) -> isize {
    let before = LIVE.load(Ordering::Relaxed);
    let sim = Sim::formed(SimConfig::default(), n);
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    drop(sim);
    bytes
}

/// Bytes one view of `n` members takes on its own (the members themselves aside).
fn bytes_of_one_view(n: usize) -> isize {
    let now = std::time::Instant::now();
    let members: Vec<Arc<Member>> = (0..n)
        .map(|i| {
            Arc::new(Member {
                name: format!("n{i}"),
                addr: ([10, 0, 0, 1], 7946).into(),
                incarnation: 1,
                status: Status::Alive,
                tags: Tags::default(),
            })
        })
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut view = View::new();
    for m in &members {
        view.merge(now, m.clone());
    }
    LIVE.load(Ordering::Relaxed) - before
}

#[test]
fn a_formed_cluster_shares_one_view_and_detects_a_crash() {
    // Each extra node costs far less than its own copy of the view would: the nodes' views
    // share their storage.
    let per_node = (bytes_of_formed(400) - bytes_of_formed(200)) / 200;
    let copy = bytes_of_one_view(400);
    assert!(
        per_node < copy / 2,
        "{per_node} bytes per extra node, a copy of the view takes {copy}"
    );

    let n = 300;
    let config = SimConfig {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(5),
        seed: 9,
        ..SimConfig::default()
    };
    let mut sim = Sim::formed(config, n);
    let all: Vec<usize> = (0..n).collect();
    assert!(sim.all_count_up(n), "every node starts with every node up");
    assert!(sim.all_see(&all, Status::Alive));
    sim.run_for(Duration::from_secs(5));
    assert!(sim.all_count_up(n), "nothing changes while nothing fails");
    let per_node = 2.0 * sim.connections() as f64 / n as f64;
    assert!(
        (4.0..64.0).contains(&per_node),
        "the overlay connects each node to a few members: {per_node} connections per node"
    );
    let victim = n / 2;
    let at = sim.elapsed();
    sim.crash(victim);
    let seen = sim.run_until(Duration::from_secs(30), |s| {
        s.all_see(&[victim], Status::Down)
    });
    assert!(
        seen.is_some(),
        "every live node marks the crashed node down"
    );
    let downs: Vec<_> = sim
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Down)
        .collect();
    assert!(downs.iter().all(|e| e.target == victim && e.at >= at));
    assert_eq!(
        downs.len(),
        n - 1,
        "one down event per observer, no false positive"
    );
}
