//! Reports: one run ([`RunReport`]), or A/B rounds with medians and ratios
//! ([`CompareReport`]); as JSON or as text for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::abr::AbrReport;
use crate::players::PlayersReport;
use crate::stats::{median, ratio, Summary};
use keyframe_core::size::human_bytes;

/// The result of one run against one server.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub target: String,
    pub workload: String,
    pub load: String,
    #[serde(flatten)]
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub players: Option<PlayersReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abr: Option<AbrReport>,
}

/// The headline figures of a run, compared across runs and targets.
pub fn metrics(r: &RunReport) -> Vec<(&'static str, f64)> {
    let s = &r.summary;
    let mut m = vec![
        ("requests_per_s", s.requests_per_s),
        ("bytes_per_s", s.bytes_per_s),
        ("p50_ms", s.latency_ms.p50),
        ("p95_ms", s.latency_ms.p95),
        ("p99_ms", s.latency_ms.p99),
        ("p99.9_ms", s.latency_ms.p999),
        ("max_ms", s.latency_ms.max),
        ("errors", s.errors as f64),
        ("client_cpu_s", s.client_cpu_s),
    ];
    if let Some(p) = &r.players {
        m.extend([
            (
                "max_players_without_rebuffer",
                p.max_players_without_rebuffer as f64,
            ),
            ("rebuffer_ratio", p.last.rebuffer_ratio),
            ("startup_ms_p50", p.last.startup_ms_p50),
            ("achieved_bitrate_bps", p.last.achieved_bitrate_bps),
        ]);
    }
    if let Some(a) = &r.abr {
        m.extend([
            (
                "max_players_without_rebuffer",
                a.max_players_without_rebuffer as f64,
            ),
            ("rebuffer_ratio", a.last.rebuffer_ratio),
            ("startup_ms_p50", a.last.startup_ms_p50),
            ("startup_ms_p95", a.last.startup_ms_p95),
            ("avg_bitrate_bps", a.last.avg_bitrate_bps),
            ("switches_per_player", a.last.switches_per_player),
        ]);
    }
    m
}

/// Whether a run passed: no byte-check mismatch, something served, errors
/// within the allowed fraction.
pub fn passed(r: &RunReport, max_error_rate: f64) -> bool {
    let s = &r.summary;
    let attempts = (s.requests + s.errors) as f64;
    s.verify_failures == 0 && s.requests > 0 && (s.errors as f64) <= max_error_rate * attempts
}

/// `--compare`: every round's runs, and per metric the medians and B/A.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub a: String,
    pub b: String,
    pub rounds: Vec<[RunReport; 2]>,
    pub median_a: BTreeMap<&'static str, f64>,
    pub median_b: BTreeMap<&'static str, f64>,
    pub ratio_b_over_a: BTreeMap<&'static str, Option<f64>>,
}

impl CompareReport {
    pub fn new(a: String, b: String, rounds: Vec<[RunReport; 2]>) -> CompareReport {
        let medians = |side: usize| {
            let mut out = BTreeMap::new();
            let per_run: Vec<_> = rounds.iter().map(|r| metrics(&r[side])).collect();
            if let Some(first) = per_run.first() {
                for (i, (name, _)) in first.iter().enumerate() {
                    let values: Vec<f64> = per_run.iter().map(|m| m[i].1).collect();
                    out.insert(*name, median(&values).unwrap_or(f64::NAN));
                }
            }
            out
        };
        let median_a = medians(0);
        let median_b = medians(1);
        let ratio_b_over_a = median_a
            .iter()
            .map(|(k, va)| (*k, median_b.get(k).and_then(|vb| ratio(*va, *vb))))
            .collect();
        CompareReport {
            a,
            b,
            rounds,
            median_a,
            median_b,
            ratio_b_over_a,
        }
    }
}

/// One line per finished run of a comparison (stderr).
pub fn progress(round: usize, rounds: usize, side: &str, r: &RunReport) -> String {
    let s = &r.summary;
    format!(
        "round {round}/{rounds} {side} {}: {:.0} req/s, {}/s, p99 {:.2} ms, {} errors",
        r.target,
        s.requests_per_s,
        human_bytes(s.bytes_per_s),
        s.latency_ms.p99,
        s.errors
    )
}

/// The readable summary of one run.
pub fn text(r: &RunReport) -> String {
    let s = &r.summary;
    let l = &s.latency_ms;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} against {} ({}, {:.1} s measured)",
        r.workload, r.target, r.load, s.elapsed_s
    );
    let _ = write!(
        out,
        "  requests  {} ({:.1}/s), errors {}",
        s.requests, s.requests_per_s, s.errors
    );
    if !s.error_kinds.is_empty() {
        let kinds: Vec<String> = s
            .error_kinds
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = write!(out, " ({})", kinds.join(", "));
    }
    if s.unsent > 0 {
        let _ = write!(out, ", {} scheduled but never sent", s.unsent);
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "  bytes     {} ({}/s)",
        human_bytes(s.bytes as f64),
        human_bytes(s.bytes_per_s)
    );
    let _ = writeln!(
        out,
        "  latency   p50 {:.3} ms, p90 {:.3}, p95 {:.3}, p99 {:.3}, p99.9 {:.3}, max {:.3}",
        l.p50, l.p90, l.p95, l.p99, l.p999, l.max
    );
    let _ = writeln!(out, "  client    {:.2} s CPU", s.client_cpu_s);
    let _ = writeln!(
        out,
        "  verified  {} responses byte for byte, {} mismatches",
        s.verified, s.verify_failures
    );
    if let Some(first) = &s.first_verify_failure {
        let _ = writeln!(out, "  MISMATCH  {first}");
    }
    if let Some(p) = &r.players {
        let st = &p.last;
        let _ = writeln!(
            out,
            "  players   {} ({} started), startup p50 {:.0} ms, p90 {:.0}, max {:.0}",
            st.players, st.started, st.startup_ms_p50, st.startup_ms_p90, st.startup_ms_max
        );
        let _ = writeln!(
            out,
            "  rebuffers {} (ratio {:.4}), {} players without, {} seeks (resume p50 {:.0} ms)",
            st.rebuffers, st.rebuffer_ratio, st.players_without_rebuffer, st.seeks, st.seek_ms_p50
        );
        let _ = writeln!(
            out,
            "  bitrate   {:.2} Mbps achieved per player (min {:.2}), target {:.2}",
            st.achieved_bitrate_bps / 1e6,
            st.min_achieved_bitrate_bps / 1e6,
            st.target_bitrate_bps as f64 / 1e6
        );
        if !p.steps.is_empty() {
            let _ = writeln!(
                out,
                "  capacity  {} players without rebuffering",
                p.max_players_without_rebuffer
            );
        }
    }
    if let Some(a) = &r.abr {
        abr_text(&mut out, a);
    }
    out
}

fn abr_text(out: &mut String, a: &AbrReport) {
    let ladder: Vec<String> = a
        .renditions
        .iter()
        .map(|r| {
            format!(
                "{} {:.2} Mbps",
                r.resolution.as_deref().unwrap_or("audio"),
                r.average_bandwidth as f64 / 1e6
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "  ladder    {}{}, {} segments",
        ladder.join(", "),
        if a.separate_audio { " + audio" } else { "" },
        a.renditions.first().map_or(0, |r| r.segments)
    );
    let st = &a.last;
    let _ = writeln!(
        out,
        "  players   {} ({} started), startup p50 {:.0} ms, p95 {:.0}, max {:.0}",
        st.players, st.started, st.startup_ms_p50, st.startup_ms_p95, st.startup_ms_max
    );
    let _ = writeln!(
        out,
        "  rebuffers {} (ratio {:.4}), {} players without",
        st.rebuffers, st.rebuffer_ratio, st.players_without_rebuffer
    );
    let _ = writeln!(
        out,
        "  bitrate   {:.2} Mbps average per player (min {:.2}), {:.1} switches per player (max {})",
        st.avg_bitrate_bps / 1e6,
        st.min_avg_bitrate_bps / 1e6,
        st.switches_per_player,
        st.max_switches
    );
    // One line per cap: what each class of link got.
    let mut caps: Vec<Option<u64>> = st.per_player.iter().map(|p| p.cap_bps).collect();
    caps.sort_unstable();
    caps.dedup();
    if caps.len() > 1 || caps.first().is_some_and(Option::is_some) {
        for cap in caps {
            let group: Vec<_> = st.per_player.iter().filter(|p| p.cap_bps == cap).collect();
            let n = group.len() as f64;
            let _ = writeln!(
                out,
                "  cap {} {} players: {:.2} Mbps average, {:.1} switches, {} rebuffers, startup mean {:.0} ms",
                cap.map_or("none".to_owned(), |c| format!("{:.2}Mbps", c as f64 / 1e6)),
                group.len(),
                group.iter().map(|p| p.avg_bitrate_bps).sum::<f64>() / n / 1e6,
                group.iter().map(|p| p.switches).sum::<u64>() as f64 / n,
                group.iter().map(|p| p.rebuffers).sum::<u64>(),
                group.iter().filter_map(|p| p.startup_ms).sum::<f64>() / n
            );
        }
    }
    if !a.steps.is_empty() {
        let _ = writeln!(
            out,
            "  capacity  {} players without rebuffering",
            a.max_players_without_rebuffer
        );
    }
}

/// The readable summary of a comparison.
pub fn compare_text(c: &CompareReport) -> String {
    let mut out = String::new();
    let workload = c.rounds.first().map_or("", |r| r[0].workload.as_str());
    let _ = writeln!(
        out,
        "{workload}: A = {}, B = {}, medians of {} interleaved rounds",
        c.a,
        c.b,
        c.rounds.len()
    );
    let _ = writeln!(out, "  {:<30} {:>14} {:>14} {:>8}", "", "A", "B", "B/A");
    for (name, a) in &c.median_a {
        let b = c.median_b.get(name).copied().unwrap_or(f64::NAN);
        let r = c
            .ratio_b_over_a
            .get(name)
            .copied()
            .flatten()
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"));
        let _ = writeln!(out, "  {name:<30} {a:>14.3} {b:>14.3} {r:>8}");
    }
    for (i, round) in c.rounds.iter().enumerate() {
        for (side, r) in ["A", "B"].iter().zip(round) {
            if let Some(first) = &r.summary.first_verify_failure {
                let _ = writeln!(out, "  MISMATCH round {} {side}: {first}", i + 1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::TaskStats;
    use std::time::Duration;

    fn run(rps: u64, p99_ms: u64) -> RunReport {
        let mut t = TaskStats::new(1);
        for _ in 0..rps {
            t.record(Duration::from_millis(p99_ms), 100, Duration::ZERO);
        }
        RunReport {
            target: "t".into(),
            workload: "w".into(),
            load: "l".into(),
            summary: t.summary(Duration::from_secs(1), 1.0),
            players: None,
            abr: None,
        }
    }

    #[test]
    fn compare_takes_medians_then_ratios() {
        let c = CompareReport::new(
            "a".into(),
            "b".into(),
            vec![
                [run(100, 1), run(50, 4)],
                [run(300, 1), run(90, 2)],
                [run(200, 9), run(80, 2)],
            ],
        );
        assert_eq!(c.median_a["requests_per_s"], 200.0);
        assert_eq!(c.median_b["requests_per_s"], 80.0);
        assert_eq!(c.ratio_b_over_a["requests_per_s"], Some(0.4));
        assert!((c.median_a["p99_ms"] - 1.0).abs() < 0.01);
        assert!((c.ratio_b_over_a["p99_ms"].expect("ratio") - 2.0).abs() < 0.02);
        assert_eq!(c.ratio_b_over_a["errors"], None); // 0 errors on A
        let text = compare_text(&c);
        assert!(text.contains("requests_per_s"), "{text}");
        let json = serde_json::to_value(&c).expect("json");
        assert_eq!(json["rounds"][0][1]["requests"], 50);
        assert_eq!(json["median_b"]["requests_per_s"], 80.0);
    }

    #[test]
    fn pass_and_fail() {
        let mut r = run(1000, 1);
        assert!(passed(&r, 0.01));
        r.summary.errors = 11;
        assert!(!passed(&r, 0.01));
        r.summary.errors = 0;
        r.summary.verify_failures = 1;
        assert!(!passed(&r, 0.01));
        assert!(!passed(&run(0, 1), 0.01));
        let json = serde_json::to_value(run(10, 5)).expect("json");
        for key in [
            "requests",
            "errors",
            "requests_per_s",
            "bytes_per_s",
            "client_cpu_s",
            "timeline",
        ] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
        assert!(json["latency_ms"].get("p99.9").is_some());
    }
}
