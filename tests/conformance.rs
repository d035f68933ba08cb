//! The RFC 9111 conformance suite (`keyframe bench conformance`) against
//! Keyframe's edge, in process: the suite's scriptable origin on port 0, an edge
//! in front of it, every case at once.
//!
//! Strict both ways: a case that fails and is not in [`EXPECTED_FAILURES`] fails
//! the test, and so does a listed case that now passes (take it off the list).
//! Each entry says why it fails: an issue-15 defect still open, or a choice.

use keyframe_bench::conformance::{self, Origin, Outcome};
use keyframe_edge::{Config, Server};
use tokio::net::TcpListener;

/// Cases the edge fails today, each with its reason.
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    // Permitted, not implemented, or a documented choice (deploy/README.md).
    ("heuristic.501", "choice: a 5xx is never stored"),
    (
        "store.no-freshness-no-validator",
        "choice: neither freshness nor validator passes",
    ),
    (
        "vary.whitespace",
        "MAY: Vary values are compared as sent, not normalised",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_passes_the_conformance_suite_but_its_known_failures() {
    let origin = Origin::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("test origin");
    let config = Config {
        upstream: vec![origin.url()],
        cache_memory: keyframe_core::size::ByteSize(64 << 20),
        // Probes would show up in no case's log, but need not run at all.
        health_check_secs: 0,
        ..Config::default()
    };
    let server = Server::new(config).expect("edge config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let edge = tokio::spawn(server.run(listener, async move {
        let _ = stopped.await;
    }));

    let report = conformance::check(
        &format!("http://{addr}"),
        &origin,
        conformance::selected(None),
    )
    .await
    .expect("the suite ran");
    let _ = stop.send(());
    let _ = edge.await;
    eprintln!(
        "keyframe edge: {} in {} ms",
        report.score_line(),
        report.elapsed_ms
    );

    let problems = mismatches(&report.cases, EXPECTED_FAILURES);
    assert!(
        problems.is_empty(),
        "the conformance suite disagrees with EXPECTED_FAILURES:\n{}",
        problems.join("\n")
    );
}

/// Every way `outcomes` differ from `expected` failures, one line each.
fn mismatches(outcomes: &[Outcome], expected: &[(&str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    for o in outcomes {
        match (o.passed, expected.iter().find(|(id, _)| *id == o.id)) {
            (false, None) => problems.push(format!(
                "FAILS  {} ({} {}): {}",
                o.id,
                o.level.name(),
                o.rfc,
                o.reason.as_deref().unwrap_or("")
            )),
            (true, Some((_, why))) => problems.push(format!(
                "PASSES {}: remove it from EXPECTED_FAILURES (listed for: {why})",
                o.id
            )),
            _ => {}
        }
    }
    for (id, _) in expected {
        if !outcomes.iter().any(|o| o.id == *id) {
            problems.push(format!(
                "UNKNOWN {id}: no such case; remove it from EXPECTED_FAILURES"
            ));
        }
    }
    problems
}

#[test]
fn the_list_is_checked_both_ways() {
    let outcome = |id: &str, passed: bool| Outcome {
        id: id.into(),
        rfc: "RFC 9111 §4".into(),
        level: conformance::Level::Must,
        title: String::new(),
        passed,
        unmet: false,
        reason: (!passed).then(|| "why".into()),
        ms: 0,
    };
    let outcomes = [outcome("a", true), outcome("b", false), outcome("c", false)];
    assert!(mismatches(&outcomes, &[("b", "x"), ("c", "y")]).is_empty());
    let problems = mismatches(&outcomes, &[("a", "x"), ("c", "y"), ("z", "gone")]);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("PASSES a"));
    assert!(problems[1].starts_with("FAILS  b"));
    assert!(problems[2].starts_with("UNKNOWN z"));
}
