//! The dashboard (`GET /ui`, docs/DASHBOARD.md) in a real browser: headless Chromium driven
//! through chromedriver (WebDriver, fantoccini), on one of 3 agents that each run the
//! singleton `cron`. Asserted from the rendered page: the sign-in prompt and no data without
//! the token, or with a wrong one, or after a 401; 3 alive members with it, filtered and
//! sorted; the table `carts` on 3 replicas with its records, paged; the tracker's nodes online;
//! the topology (3 members, linked by the broadcast tree) and traffic rates; a
//! SIGKILLed member down within 3 s without a reload, and its failure on the timeline with a
//! detection latency, and offline in the tracker; the restarted member alive again with a
//! higher incarnation, and its details on a click; a new leader
//! at a higher epoch once the singleton's leader is killed; no error in the browser. A
//! screenshot of each view is written under the target directory
//! (`CARGO_TARGET_TMPDIR/dashboard/`).
//!
//! Without chromium or chromedriver the test is skipped with its reason, except under CI
//! (`CI=true`), where it fails (scripts/setup-browser installs them).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::{json, Value};

mod common;
use common::*;

/// A chromedriver of our own, on a free port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        // In a process group of its own, with the browsers it starts: all killed when dropped,
        // even if the test fails before closing its session.
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let d = Driver { child, port };
        wait_for(Duration::from_secs(30), "chromedriver answers", || {
            ureq::get(&format!("http://127.0.0.1:{port}/status"))
                .timeout(Duration::from_secs(5))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        d
    }

    /// A headless Chromium session (as root: without its sandbox).
    async fn browser(&self) -> Client {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,800"],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let caps = caps.as_object().unwrap().clone();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session through chromedriver")
    }

    /// The browser's console messages at level SEVERE since the last call (chromedriver's log
    /// command).
    fn console_errors(&self, session: &str) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/session/{session}/se/log", self.port);
        let v: Value = ureq::post(&url)
            .timeout(Duration::from_secs(10))
            .send_json(json!({ "type": "browser" }))
            .expect("chromedriver's browser log")
            .into_json()
            .unwrap();
        let entries = v["value"].as_array().expect("log entries").clone();
        entries
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .collect()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// What the page shows, read from its DOM: whether the sign-in form is up, the rows of each
/// view (their cells' text), and the errors the page caught.
async fn page(c: &Client) -> Value {
    const READ: &str = r#"
        const rows = (sel) => [...document.querySelectorAll(sel + ' tbody tr:not(.empty):not(.spacer)')]
            .map((r) => [...r.cells].map((td) => td.textContent));
        return {
            login: !document.querySelector('#login').hidden,
            login_error: document.querySelector('#login-error').textContent,
            members: rows('#members').map((c) => ({ name: c[0], addr: c[1], status: c[2], incarnation: Number(c[3]), connected: c[5] })),
            timeline: rows('#timeline').map((c) => ({ name: c[1], kind: c[2], detection: c[4] })),
            singletons: [...document.querySelectorAll('#singletons tbody tr:not(.empty)')].map((r) => ({
                name: r.cells[0].textContent, leader: r.cells[1].textContent, epoch: Number(r.cells[2].textContent),
                changes: [...r.cells[6].querySelectorAll('div')].map((d) => d.dataset.nodes) })),
            topology: {
                nodes: [...document.querySelectorAll('#topology g')].map((g) => g.dataset.name),
                turns: Object.fromEntries([...document.querySelectorAll('#topology g')].map((g) => [g.dataset.name, Number(g.dataset.turn)])),
                eager: document.querySelectorAll('#topology line.eager').length,
                lazy: document.querySelectorAll('#topology line.lazy').length,
            },
            traffic: Object.fromEntries([...document.querySelectorAll('#charts .chart')].map((c) =>
                [c.dataset.chart, [...c.querySelectorAll('.values span')].map((s) => s.textContent)])),
            traffic_peak: (document.querySelector('#charts .chart .muted') || {}).textContent,
            traffic_points: Number((document.querySelector('#charts .chart') || { dataset: {} }).dataset.points || 0),
            tables: rows('#tables').map((c) => ({ name: c[0], records: Number(c[1]), replicas: c[3], leader: c[4] })),
            records_shown: !document.querySelector('#records-panel').hidden,
            records: rows('#records').map((c) => ({ key: c[0], value: c[1] })),
            tracker: rows('#tracker').map((c) => ({ node: c[0], status: c[1] })),
            details: document.querySelector('#member-details').hidden ? null : {
                name: document.querySelector('#details-name').textContent,
                fields: Object.fromEntries([...document.querySelectorAll('#details-fields dd')].map((d) => [d.dataset.field, d.textContent])),
                events: [...document.querySelectorAll('#details-events tbody tr:not(.empty)')].map((r) => r.dataset.kind),
            },
            errors: window.dashboardErrors || ['no dashboard script'],
        };"#;
    c.execute(READ, vec![]).await.expect("the page reads")
}

/// Waits until `cond` holds of the page, at most `limit`; the page when it does.
async fn until(c: &Client, limit: Duration, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let p = page(c).await;
        if cond(&p) {
            return p;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until the page shows {what}; it shows {p:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn member<'a>(p: &'a Value, name: &str) -> Option<&'a Value> {
    p["members"].as_array()?.iter().find(|m| m["name"] == name)
}

/// Shows `view` (a click on its tab).
async fn open(c: &Client, view: &str) {
    let tab = format!("#tabs button[data-view={view}]");
    find(c, &tab).await.click().await.unwrap();
}

/// Writes a screenshot of the page as it is under the target directory, as `name`.png.
async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    path
}

/// Shows `view` and writes its screenshot.
async fn snap(c: &Client, view: &str) -> PathBuf {
    open(c, view).await;
    screenshot(c, view).await
}

/// The element `css` selects.
async fn find(c: &Client, css: &str) -> Element {
    c.find(Locator::Css(css)).await.unwrap()
}

/// Clicks the element `css` selects; again if the page re-rendered it in between (its rows
/// are replaced once a second).
async fn click(c: &Client, css: &str) {
    for _ in 0..20 {
        if find(c, css).await.click().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot click {css}");
}

/// Types `token` in the sign-in form and sends it.
async fn sign_in(c: &Client, token: &str) {
    let input = find(c, "#token").await;
    input.clear().await.unwrap();
    input.send_keys(token).await.unwrap();
    find(c, "#login-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
}

/// Waits until the page lists 3 alive members.
async fn three_alive(c: &Client) -> Value {
    until(c, Duration::from_secs(20), "3 alive members", |p| {
        p["login"] == false
            && p["members"].as_array().unwrap().len() == 3
            && (p["members"].as_array().unwrap().iter()).all(|m| m["status"] == "alive")
    })
    .await
}

/// Console errors that are the agent's 401 answers to a wrong token, and nothing else.
fn only_refusals(errors: Vec<Value>) {
    assert!(!errors.is_empty(), "the browser logs the refusal");
    for e in errors {
        let text = e["message"].as_str().unwrap_or_default();
        assert!(text.contains("401"), "a console error: {e}");
    }
}

/// `name` as `GET /v1/members` on the agent at `http` shows it.
fn member_view(http: &str, name: &str) -> Value {
    let members = ureq_get(http, "/v1/members").expect("the members");
    let found = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name);
    found.expect("the member").clone()
}

fn leader_seen_by(a: &Agent) -> Option<(String, u64)> {
    let v = ureq_get(&a.http, "/v1/singletons")?;
    let s = v.as_array()?.iter().find(|s| s["name"] == "cron")?.clone();
    Some((s["leader"].as_str()?.to_string(), s["epoch"].as_u64()?))
}

/// The virtual list in the page (`virtualRows` of virtual.js), run on 5,000 rows in a box of
/// 300 px: only the visible rows (and a few around) are in the DOM, spacers keep the scroll
/// height, and a scroll brings the rows at the new place.
async fn virtual_list(c: &Client) {
    const TEST: &str = r#"
        const box = document.createElement('div');
        box.className = 'scroll';
        box.style.height = '300px';
        const table = document.createElement('table');
        table.innerHTML = '<thead><tr><th>n</th><th>x</th></tr></thead><tbody></tbody>';
        box.append(table);
        document.body.append(box);
        const items = [...Array(5000).keys()];
        const row = (i) => el('tr', { 'data-i': i }, el('td', {}, i), el('td', {}, 'row ' + i));
        const tbody = table.tBodies[0];
        virtualRows(box, tbody, items, row, null);
        virtualRows(box, tbody, items, row, null); // once the row height is measured
        const shown = () => [...tbody.querySelectorAll('tr[data-i]')].map((r) => Number(r.dataset.i));
        const first = shown();
        const full = box.scrollHeight;
        box.scrollTop = full / 2;
        box.dispatchEvent(new Event('scroll'));
        const middle = shown();
        const spacers = [...tbody.querySelectorAll('tr.spacer')].map((r) => Number(r.dataset.rows));
        box.remove();
        return { first, middle, full, spacers, row_px: box.rowPx };"#;
    let v = c
        .execute(TEST, vec![])
        .await
        .expect("the virtual list test runs");
    let first: Vec<u64> = serde_json::from_value(v["first"].clone()).unwrap();
    let middle: Vec<u64> = serde_json::from_value(v["middle"].clone()).unwrap();
    assert!(!first.is_empty() && first.len() < 100, "{v}");
    assert_eq!(first[0], 0, "{v}");
    // A row is 20 px at least: 5,000 rows take 100,000 px of scroll height.
    assert!(v["full"].as_f64().unwrap() > 100_000.0, "{v}");
    assert!(!middle.is_empty() && middle.len() < 100, "{v}");
    assert!(
        (2000..3000).contains(&middle[0]),
        "the rows around the middle: {v}"
    );
    let spacers: Vec<u64> = serde_json::from_value(v["spacers"].clone()).unwrap();
    assert_eq!(spacers.len(), 2, "{v}");
    assert_eq!(spacers[0] + middle.len() as u64 + spacers[1], 5000, "{v}");
}

/// The victim stopped (SIGSTOP) until the page's timeline shows it suspect with its source,
/// then resumed until the page shows it alive.
async fn suspected(c: &Client, agents: &[Agent], ui: usize, victim: usize) {
    let (name, others) = (
        &agents[victim].name,
        [&agents[ui].name, &agents[3 - ui - victim].name],
    );
    agents[victim].signal(Signal::SIGSTOP);
    let p = until(
        c,
        Duration::from_secs(20),
        "the member suspect on the timeline",
        |p| {
            (p["timeline"].as_array().unwrap().iter()).any(|t| {
                t["name"] == name.as_str() && t["kind"].as_str().unwrap().starts_with("suspect")
            })
        },
    )
    .await;
    agents[victim].signal(Signal::SIGCONT);
    let entry = (p["timeline"].as_array().unwrap().iter())
        .find(|t| t["name"] == name.as_str() && t["kind"].as_str().unwrap().starts_with("suspect"))
        .unwrap();
    let kind = entry["kind"].as_str().unwrap();
    let sources: Vec<String> = std::iter::once("suspect (by this agent)".to_string())
        .chain(others.iter().map(|o| format!("suspect (heard from {o})")))
        .collect();
    assert!(sources.iter().any(|s| s == kind), "{entry}");
    // The same in the agent's history.
    let h = ureq_get(&agents[ui].http, "/v1/history").unwrap();
    let e = (h["entries"].as_array().unwrap().iter())
        .find(|e| e["kind"] == "suspect" && e["member"] == name.as_str())
        .unwrap();
    let source = (e["by"].as_str())
        .map(|b| format!("suspect (by {b})"))
        .or_else(|| {
            e["heard_from"]
                .as_str()
                .map(|f| format!("suspect (heard from {f})"))
        });
    assert_eq!(source.as_deref(), Some(kind), "{e}");
    until(
        c,
        Duration::from_secs(30),
        "the resumed member alive",
        |p| member(p, name).is_some_and(|m| m["status"] == "alive"),
    )
    .await;
}

/// `GET /v1/history`: the agents' joins of `carts` (the agents join it at start: one of them
/// coordinated at least one join), and its parameters checked.
fn history_route(agents: &[Agent]) {
    wait_for(
        Duration::from_secs(20),
        "a join of carts in a history",
        || {
            agents.iter().any(|a| {
                ureq_get(&a.http, "/v1/history").is_some_and(|h| {
                    (h["entries"].as_array().unwrap().iter())
                        .any(|e| e["kind"] == "table_joined" && e["table"] == "carts")
                })
            })
        },
    );
    let http = &agents[0].http;
    let h = ureq_get(http, "/v1/history").unwrap();
    let last = h["last_seq"].as_u64().unwrap();
    assert!(last > 0, "{h}");
    assert_eq!(h["max_entries"], 10_000);
    assert_eq!(h["max_age_ms"], 3_600_000);
    let after = ureq_get(http, &format!("/v1/history?after={last}")).unwrap();
    assert!(
        (after["entries"].as_array().unwrap().iter()).all(|e| e["seq"].as_u64() > Some(last)),
        "{after}"
    );
    let future = ureq_get(http, "/v1/history?since_ms=99999999999999").unwrap();
    assert_eq!(future["entries"], json!([]));
    for bad in ["after=x", "since_ms=-1", "limit=1", "after=1&after=2"] {
        let status = call_json(http, "GET", &format!("/v1/history?{bad}"), None).0;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_the_cluster_live() {
    if !have("chromedriver", "scripts/setup-browser") || !have("chromium", "scripts/setup-browser")
    {
        return;
    }
    let started = Instant::now();
    let dir = tempdir();
    // `exec`: the command is the agent's child itself, so it dies with its agent.
    let extra = [
        "--singleton",
        "cron=exec sleep 1000",
        "--table",
        "carts",
        "--allow-fault-injection",
        "--handler",
        "echo=cat >/dev/null",
    ];
    let mut agents = start_agents(dir.path(), 3, &extra);
    wait_for(
        Duration::from_secs(30),
        "the agents agree on a leader",
        || {
            let seen: Vec<_> = agents.iter().map(leader_seen_by).collect();
            seen.iter().all(|s| s.is_some() && *s == seen[0])
                && agents.iter().all(|a| {
                    a.members()
                        .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["status"] == "alive"))
                })
        },
    );
    let (leader, _) = leader_seen_by(&agents[0]).unwrap();
    let leader = agents.iter().position(|a| a.name == leader).unwrap();
    // The page is opened on an agent that leads nothing; the other one is killed and restarted.
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (ui, victim) = (others[0], others[1]);
    let (ui_http, victim_name) = (agents[ui].http.clone(), agents[victim].name.clone());

    // The page's files need no token; they carry the policy; the data does need it.
    let resp = ureq::get(&format!("http://{ui_http}/ui")).call().unwrap();
    let policy = resp.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(resp.into_string().unwrap().contains("/ui/app.js"));
    let status = match ureq::get(&format!("http://{ui_http}/v1/members")).call() {
        Err(ureq::Error::Status(s, _)) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(status, 401);

    let driver = Driver::start();
    let c = driver.browser().await;
    let session = c.session_id().await.unwrap().expect("a session id");
    c.goto(&format!("http://{ui_http}/ui")).await.unwrap();

    // Without the token: the prompt, no data.
    let p = until(&c, Duration::from_secs(20), "the sign-in form", |p| {
        p["login"] == true
    })
    .await;
    assert_eq!(p["members"], json!([]), "{p}");
    screenshot(&c, "login").await;

    // A wrong token: refused, the prompt stays, no data. (The browser logs the 401 answer.)
    sign_in(&c, "wrong-token-0123456789abcdef").await;
    let p = until(&c, Duration::from_secs(20), "the token refused", |p| {
        p["login_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused"))
    })
    .await;
    assert_eq!(
        (&p["login"], &p["members"]),
        (&json!(true), &json!([])),
        "{p}"
    );
    only_refusals(driver.console_errors(&session));

    // With it: 3 alive members.
    sign_in(&c, &token()).await;
    three_alive(&c).await;
    // A 401 later (as if the agent's token changed): the prompt is back, the data gone.
    c.execute("state.token = 'wrong-token-0123456789abcdef';", vec![])
        .await
        .unwrap();
    let p = until(&c, Duration::from_secs(20), "the prompt again", |p| {
        p["login"] == true
    })
    .await;
    assert_eq!(
        (&p["members"], &p["singletons"]),
        (&json!([]), &json!([])),
        "{p}"
    );
    only_refusals(driver.console_errors(&session));
    sign_in(&c, &token()).await;
    let p = three_alive(&c).await;
    // The token: in this tab's session storage only; not in the URL, a cookie or the log.
    let kept = c
        .execute(
            "return [sessionStorage.getItem('ensemble.token'), localStorage.length, \
             document.cookie, location.href];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept[0], token().as_str());
    assert_eq!((&kept[1], &kept[2]), (&json!(0), &json!("")), "{kept}");
    assert!(!kept[3].as_str().unwrap().contains(&token()), "{kept}");

    // A partition injected at this agent (of a member that does not exist, for 300 ms): both
    // on the timeline, from the agent's history.
    let (status, _) = call_json(
        &ui_http,
        "POST",
        "/v1/partitions",
        Some(json!({"nodes": ["ghost"], "ttl_ms": 300})),
    );
    assert_eq!(status, 200);
    until(
        &c,
        Duration::from_secs(10),
        "the partition on the timeline",
        |p| {
            let kinds: Vec<&str> = (p["timeline"].as_array().unwrap().iter())
                .map(|t| t["kind"].as_str().unwrap())
                .collect();
            kinds.iter().any(|k| {
                k.starts_with("partition ") && k.contains(" injected (cut off from ghost)")
            }) && kinds
                .iter()
                .any(|k| k.starts_with("partition ") && k.contains(" resolved (ghost)"))
        },
    )
    .await;
    history_route(&agents);

    // Connected: this agent to the two others.
    until(&c, Duration::from_secs(10), "the connections", |p| {
        (p["members"].as_array().unwrap().iter()).all(|m| {
            m["connected"]
                == if m["name"] == agents[ui].name.as_str() {
                    "this agent"
                } else {
                    "yes"
                }
        })
    })
    .await;

    // Filtered, then sorted by name downwards.
    find(&c, "#filter")
        .await
        .send_keys(&victim_name)
        .await
        .unwrap();
    until(
        &c,
        Duration::from_secs(5),
        "only the member filtered",
        |p| {
            p["members"].as_array().unwrap().len() == 1
                && p["members"][0]["name"] == victim_name.as_str()
        },
    )
    .await;
    find(&c, "#filter").await.clear().await.unwrap();
    c.execute(
        "document.querySelector('#filter').dispatchEvent(new Event('input'))",
        vec![],
    )
    .await
    .unwrap();
    let name = find(&c, "#members th[data-key=name]").await;
    name.click().await.unwrap();
    until(
        &c,
        Duration::from_secs(5),
        "the members by name downwards",
        |p| {
            let names: Vec<&str> = (p["members"].as_array().unwrap().iter())
                .map(|m| m["name"].as_str().unwrap())
                .collect();
            names == ["a2", "a1", "a0"]
        },
    )
    .await;
    name.click().await.unwrap();
    let incarnation = member(&p, &victim_name).unwrap()["incarnation"]
        .as_u64()
        .unwrap();
    snap(&c, "members").await;

    // The tables: carts on 3 replicas, and its records a page at a time.
    wait_for(Duration::from_secs(30), "two records put", || {
        ["cart-1", "cart-2"].iter().all(|k| {
            let path = format!("/v1/tables/carts/records/{k}");
            call_json(&ui_http, "PUT", &path, Some(json!({"value": "apple"}))).0 == 200
        })
    });
    let records = "/v1/tables/carts/records";
    let (_, first) = call_json(&ui_http, "GET", &format!("{records}?limit=1"), None);
    assert_eq!(first, json!([{"key": "cart-1", "value": "apple"}]));
    let next = format!("{records}?limit=1&after=cart-1");
    assert_eq!(
        call_json(&ui_http, "GET", &next, None).1[0]["key"],
        "cart-2"
    );
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "page=2",
        "after=a&after=b",
    ] {
        let status = call_json(&ui_http, "GET", &format!("{records}?{bad}"), None).0;
        assert_eq!(status, 400, "{bad}");
    }
    open(&c, "tables").await;
    until(&c, Duration::from_secs(20), "carts on 3 replicas", |p| {
        p["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "carts" && t["replicas"].as_str().unwrap().starts_with("3 ("))
    })
    .await;
    find(&c, "#tables button[data-table=carts]")
        .await
        .click()
        .await
        .unwrap();
    until(&c, Duration::from_secs(10), "the records of carts", |p| {
        p["records_shown"] == true
            && p["records"]
                == json!([{"key": "cart-1", "value": "apple"}, {"key": "cart-2", "value": "apple"}])
    })
    .await;
    screenshot(&c, "tables").await;
    // The tracker: the 3 nodes online.
    open(&c, "tracker").await;
    until(&c, Duration::from_secs(20), "3 nodes online", |p| {
        let t = p["tracker"].as_array().unwrap();
        t.len() == 3 && t.iter().all(|r| r["status"] == "online")
    })
    .await;

    // The topology: the 3 members, connected (the broadcast tree of this agent spans them).
    open(&c, "topology").await;
    until(&c, Duration::from_secs(20), "3 members linked", |p| {
        let t = &p["topology"];
        t["nodes"].as_array().unwrap().len() == 3 && t["eager"].as_u64().unwrap() >= 2
    })
    .await;
    // Each member at its place on the hash ring: the API's ring_position, a turn of 2^64.
    let p = page(&c).await;
    for a in &agents {
        let ring = ensemble::proto::view::position(&a.name);
        let seen = member_view(&ui_http, &a.name);
        assert_eq!(seen["ring_position"], ring.to_string().as_str(), "{seen}");
        let turn = p["topology"]["turns"][&a.name].as_f64().unwrap();
        let want = ring as f64 / 2f64.powi(64);
        assert!(
            (turn - want).abs() < 1e-9,
            "{} at {turn}, not {want}",
            a.name
        );
    }
    screenshot(&c, "topology").await;
    // The traffic: rates computed from samples of /metrics, one a second (3 rates: 4 samples),
    // and round-trip times of acknowledged messages, sent meanwhile (one every 200 ms, until
    // the page shows them or a minute passed).
    let (sender_http, receiver) = (ui_http.clone(), agents[leader].name.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_sending = stop.clone();
    let sending = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) && !stop_sending.load(Ordering::Relaxed) {
            let body = json!({"node": receiver, "name": "echo", "payload": "ping", "ack": true});
            call_json(&sender_http, "POST", "/v1/send", Some(body));
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    open(&c, "traffic").await;
    let p = until(&c, Duration::from_secs(20), "traffic rates", |p| {
        p["traffic_points"].as_u64() >= Some(3)
            && p["traffic"]["Frames per second"]
                .as_array()
                .is_some_and(|v| {
                    v.len() == 2 && v.iter().all(|x| x.as_str().unwrap().ends_with("/s"))
                })
    })
    .await;
    assert_eq!(p["traffic"].as_object().unwrap().len(), 5, "{p}");
    until(&c, Duration::from_secs(20), "round-trip times", |p| {
        p["traffic"]["Round-trip time"].as_array().is_some_and(|v| {
            let unit = |s: &str| s.ends_with(" ms") || s.ends_with(" µs") || s.ends_with(" s");
            v.len() == 2
                && v[0]
                    .as_str()
                    .is_some_and(|s| s.starts_with("mean ") && unit(s))
                && v[1]
                    .as_str()
                    .is_some_and(|s| s.starts_with("p50 ≤ ") && unit(s))
        })
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    sending.join().unwrap();
    // Members ping each other: frames flow.
    let peak = p["traffic_peak"].as_str().unwrap();
    assert!(
        peak.starts_with("peak ") && !peak.starts_with("peak 0 "),
        "{peak}"
    );
    screenshot(&c, "traffic").await;
    open(&c, "members").await;

    // SIGSTOP for a while: the member suspect on the timeline, with who suspected it (this
    // agent's own probes, or the peer that told it); then resumed, alive again.
    suspected(&c, &agents, ui, victim).await;

    // SIGKILL: down on the page within 3 s, without a reload; on the timeline with its
    // detection latency.
    agents[victim].signal(Signal::SIGKILL);
    let killed = Instant::now();
    until(&c, Duration::from_secs(3), "the killed member down", |p| {
        member(p, &victim_name).is_some_and(|m| m["status"] == "down")
    })
    .await;
    eprintln!(
        "the page showed {victim_name} down {:?} after SIGKILL",
        killed.elapsed()
    );
    until(
        &c,
        Duration::from_secs(10),
        "the killed member not connected",
        |p| member(p, &victim_name).is_some_and(|m| m["connected"] == "no"),
    )
    .await;
    let p = until(
        &c,
        Duration::from_secs(5),
        "the failure on the timeline",
        |p| {
            p["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == victim_name.as_str() && t["kind"] == "down")
        },
    )
    .await;
    let failure = p["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == victim_name.as_str() && t["kind"] == "down")
        .unwrap();
    let detection = failure["detection"].as_str().unwrap();
    assert!(
        detection.ends_with(" ms") || detection.ends_with(" s"),
        "a detection latency on the timeline: {failure}"
    );
    snap(&c, "timeline").await;
    // The timeline is the agent's: a page opened after the failure shows it too.
    c.refresh().await.unwrap();
    until(
        &c,
        Duration::from_secs(20),
        "the failure after a reload",
        |p| {
            p["login"] == false
                && (p["timeline"].as_array().unwrap().iter()).any(|t| {
                    t["name"] == victim_name.as_str()
                        && t["kind"] == "down"
                        && t["detection"] == failure["detection"]
                })
        },
    )
    .await;
    // The tracker: the killed node offline.
    open(&c, "tracker").await;
    until(
        &c,
        Duration::from_secs(30),
        "the killed node offline",
        |p| {
            (p["tracker"].as_array().unwrap().iter())
                .any(|r| r["node"] == victim_name.as_str() && r["status"] == "offline")
        },
    )
    .await;
    screenshot(&c, "tracker").await;
    open(&c, "members").await;

    // Restarted: alive again, at a higher incarnation.
    let seed = agents[ui].bind.clone();
    agents[victim].spawn(Some(&seed), SECRET);
    until(
        &c,
        Duration::from_secs(30),
        "the restarted member alive",
        |p| {
            member(p, &victim_name).is_some_and(|m| {
                m["status"] == "alive" && m["incarnation"].as_u64().unwrap() > incarnation
            })
        },
    )
    .await;

    // The member's own view, asked of it by this agent (the page's details show it).
    let http = &agents[ui].http;
    let view = format!("/v1/members/{victim_name}/view");
    wait_for(Duration::from_secs(20), "the member's own view", || {
        ureq_get(http, &view).is_some_and(|v| v["counts"] == json!({"alive": 3}))
    });
    let v = ureq_get(http, &view).unwrap();
    assert_eq!(v["node"], victim_name.as_str(), "{v}");
    assert_eq!(v["not_alive"], json!({}), "{v}");
    let (status, v) = call_json(http, "GET", "/v1/members/nobody/view", None);
    assert_eq!((status, &v["code"]), (404, &json!("unknown_member")), "{v}");

    // Its details on a click of its row: address, status, incarnation, tags, its events.
    assert_eq!(page(&c).await["details"], Value::Null);
    let row = format!("#members tr[data-name={victim_name}] td");
    click(&c, &row).await;
    let p = until(&c, Duration::from_secs(30), "the member's details", |p| {
        let d = &p["details"];
        d["name"] == victim_name.as_str()
            && (d["events"].as_array().unwrap().iter()).any(|k| k == "up")
            && d["fields"]["tables"] == "carts"
            && d["fields"]["singletons"] == "cron (runs it)"
            && d["fields"]["tracker"]
                .as_str()
                .is_some_and(|t| t.starts_with("online since "))
            && d["fields"]["suspected"]
                .as_str()
                .is_some_and(|t| t.starts_with("by this agent at ") || t.starts_with("heard from "))
            && d["fields"]["its view"] == "3 alive"
    })
    .await;
    let d = &p["details"];
    let alive = member(&p, &victim_name).unwrap();
    assert_eq!(d["fields"]["address"], agents[victim].bind.as_str(), "{d}");
    assert_eq!(d["fields"]["status"], "alive", "{d}");
    assert_eq!(
        d["fields"]["incarnation"],
        alive["incarnation"].to_string(),
        "{d}"
    );
    assert!(d["fields"]["tags"].is_string(), "{d}");
    assert!(
        d["events"].as_array().unwrap().contains(&json!("down")),
        "{d}"
    );
    screenshot(&c, "details").await;
    find(&c, "#details-close").await.click().await.unwrap();
    until(&c, Duration::from_secs(5), "the details closed", |p| {
        p["details"].is_null()
    })
    .await;

    // The singleton's leader killed: another leader at a higher epoch.
    let p = until(&c, Duration::from_secs(10), "the singleton", |p| {
        p["singletons"].as_array().unwrap().len() == 1
    })
    .await;
    let before = p["singletons"][0].clone();
    assert_eq!(before["name"], "cron");
    assert_eq!(before["leader"], agents[leader].name.as_str(), "{p}");
    agents[leader].signal(Signal::SIGKILL);
    until(
        &c,
        Duration::from_secs(30),
        "a new leader at a higher epoch",
        |p| {
            let s = &p["singletons"][0];
            s["leader"] != before["leader"]
                && s["leader"] != "(none)"
                && s["epoch"].as_u64() > before["epoch"].as_u64()
        },
    )
    .await;
    // The candidates' last changes: the killed leader gone from them, after a set with it.
    let killed = agents[leader].name.as_str();
    let p = until(
        &c,
        Duration::from_secs(10),
        "the candidates' changes",
        |p| {
            let changes = p["singletons"][0]["changes"].as_array().unwrap();
            let has = |c: &Value| c.as_str().unwrap().split(' ').any(|n| n == killed);
            changes.len() >= 2 && !has(&changes[0]) && changes[1..].iter().any(has)
        },
    )
    .await;
    // The same in the agent's history.
    let h = ureq_get(&ui_http, "/v1/history").unwrap();
    let last = (h["entries"].as_array().unwrap().iter())
        .rfind(|e| e["kind"] == "candidates" && e["singleton"] == "cron")
        .unwrap();
    let nodes: Vec<&str> = (last["nodes"].as_array().into_iter().flatten())
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(
        nodes.join(" "),
        p["singletons"][0]["changes"][0],
        "{last} {p}"
    );
    snap(&c, "singletons").await;
    // The takeover on the timeline: the new leader leads cron.
    let p = until(
        &c,
        Duration::from_secs(5),
        "the takeover on the timeline",
        |p| {
            p["timeline"].as_array().unwrap().iter().any(|t| {
                t["kind"]
                    .as_str()
                    .unwrap()
                    .starts_with("leads cron (epoch ")
                    && t["name"] == p["singletons"][0]["leader"]
            })
        },
    )
    .await;
    // The two SIGKILLs (the SIGSTOP before may have made the victim down once more).
    let failures = |n: &str| {
        (p["timeline"].as_array().unwrap().iter())
            .filter(|t| t["kind"] == "down" && t["name"] == n)
            .count()
    };
    assert_eq!(failures(killed), 1, "the leader's SIGKILL: {p}");
    assert!(
        (1..=2).contains(&failures(&victim_name)),
        "the victim's SIGKILL: {p}"
    );
    snap(&c, "timeline").await;

    for a in &agents {
        assert!(
            !a.log_text().contains(&token()),
            "{} logged the token",
            a.name
        );
    }

    // Large clusters: the page with low thresholds (`?virtual=2&graph=2`, display settings):
    // the members through the virtual list (its spacers), the graph as dots with eager links only.
    c.goto(&format!("http://{ui_http}/ui?virtual=2&graph=2"))
        .await
        .unwrap();
    until(&c, Duration::from_secs(20), "the members, virtually", |p| {
        p["login"] == false && p["members"].as_array().unwrap().len() == 3
    })
    .await;
    let spacers = c
        .execute(
            "return document.querySelectorAll('#members tbody tr.spacer').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(spacers, 2, "a spacer above and one below");
    open(&c, "topology").await;
    let p = until(&c, Duration::from_secs(20), "the graph as dots", |p| {
        let t = &p["topology"];
        t["nodes"].as_array().unwrap().len() == 3 && t["eager"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(p["topology"]["lazy"], 0, "{p}");
    let note = c
        .execute(
            "return document.querySelector('#topology-note').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert!(note.as_str().unwrap().contains("drawn as dots"), "{note}");
    assert_eq!(
        c.execute(
            "return document.querySelectorAll('#topology text').length",
            vec![]
        )
        .await
        .unwrap(),
        0
    );
    screenshot(&c, "topology-large").await;
    virtual_list(&c).await;

    // No error in the page, nor in the browser's console.
    let p = page(&c).await;
    assert_eq!(p["errors"], json!([]), "errors caught by the page");
    let console = driver.console_errors(&session);
    assert!(console.is_empty(), "errors in the console: {console:#?}");
    c.close().await.unwrap();
    eprintln!("the dashboard test took {:?}", started.elapsed());
}
