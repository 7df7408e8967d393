//! The metrics reference (docs/OPERATIONS.md) and the Grafana dashboard
//! (deploy/grafana/ensemble.json) checked against the metrics the library describes.

use std::collections::BTreeSet;

use ensemble::metrics::{metric_names, MetricKind, METRICS};

fn repo_file(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The metric names in the first column of the reference table.
fn documented() -> BTreeSet<String> {
    repo_file("docs/OPERATIONS.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("ensemble_") || n.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_reference_documents_every_metric_and_nothing_else() {
    let described: BTreeSet<String> = metric_names().map(str::to_owned).collect();
    let documented = documented();
    let missing: Vec<_> = described.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "undocumented in docs/OPERATIONS.md: {missing:?}"
    );
    assert!(extra.is_empty(), "documented but not recorded: {extra:?}");
    let doc = repo_file("docs/OPERATIONS.md");
    for m in METRICS {
        let kind = match m.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        assert!(
            doc.contains(&format!("| `{}` | {kind} |", m.name)),
            "{} is documented with another type than {kind}",
            m.name
        );
    }
}

#[test]
fn every_dashboard_panel_queries_metrics_that_exist() {
    let text = repo_file("deploy/grafana/ensemble.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let described: BTreeSet<&str> = metric_names().collect();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let names = metric_tokens(expr);
            assert!(!names.is_empty(), "{expr} queries no metric");
            for n in names {
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| n.strip_suffix(s).filter(|b| described.contains(b)))
                    .unwrap_or(&n);
                assert!(
                    described.contains(base),
                    "panel {} queries {n}, which no node records",
                    panel["title"]
                );
            }
        }
    }
}

/// The `ensemble_*` and `process_*` identifiers in a PromQL expression.
fn metric_tokens(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with("ensemble_") || t.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}
