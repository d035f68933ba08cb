//! A run's report: per-case lines and a score by level (text), the same as JSON,
//! and several runs side by side as a Markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::dsl::Level;
use super::runner::Outcome;

/// One run of the suite against one proxy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What was tested (`--name`, or the proxy URL).
    pub name: String,
    pub proxy: String,
    pub elapsed_ms: u64,
    pub passed: usize,
    pub total: usize,
    /// Passed and total per level.
    pub levels: BTreeMap<Level, Score>,
    pub cases: Vec<Outcome>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub passed: usize,
    pub total: usize,
}

impl Report {
    pub fn new(name: String, proxy: String, elapsed_ms: u64, cases: Vec<Outcome>) -> Report {
        let mut levels: BTreeMap<Level, Score> = BTreeMap::new();
        for c in &cases {
            let s = levels.entry(c.level).or_default();
            s.total += 1;
            s.passed += usize::from(c.passed);
        }
        Report {
            name,
            proxy,
            elapsed_ms,
            passed: cases.iter().filter(|c| c.passed).count(),
            total: cases.len(),
            levels,
            cases,
        }
    }

    /// `passed/total` overall and per level, on one line.
    pub fn score_line(&self) -> String {
        let mut s = format!("{}/{} passed", self.passed, self.total);
        for (level, score) in &self.levels {
            let _ = write!(s, ", {} {}/{}", level.name(), score.passed, score.total);
        }
        s
    }

    /// One line per case (failures with their reason), then the score.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.cases {
            let mark = if c.passed { "pass" } else { "FAIL" };
            let _ = writeln!(
                out,
                "{mark}  {:<44} {:<7} {:<20} {}",
                c.id,
                c.level.name(),
                c.rfc,
                c.title
            );
            if let Some(reason) = &c.reason {
                let _ = writeln!(out, "      {reason}");
            }
        }
        let _ = writeln!(
            out,
            "\n{}: {} ({:.1} s)",
            self.name,
            self.score_line(),
            self.elapsed_ms as f64 / 1000.0
        );
        out
    }
}

/// The runs side by side: a score table, one row per case, then why the first
/// run's failures failed.
pub fn markdown(runs: &[Report]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    let _ = writeln!(out, "| level | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(runs.len()));
    for level in Level::ALL {
        let cells: Vec<String> = runs
            .iter()
            .map(|r| {
                let s = r.levels.get(&level).copied().unwrap_or_default();
                format!("{}/{}", s.passed, s.total)
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", level.name(), cells.join(" | "));
    }
    let totals: Vec<String> = runs
        .iter()
        .map(|r| format!("**{}/{}**", r.passed, r.total))
        .collect();
    let _ = writeln!(out, "| all | {} |\n", totals.join(" | "));
    let _ = writeln!(out, "| case | RFC | level | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|---|---|{}", ":---:|".repeat(runs.len()));
    let Some(first) = runs.first() else {
        return out;
    };
    for c in &first.cases {
        let cells: Vec<&str> = runs
            .iter()
            .map(|r| match r.cases.iter().find(|o| o.id == c.id) {
                Some(o) if o.passed => "pass",
                Some(_) => "**fail**",
                None => "–",
            })
            .collect();
        let _ = writeln!(
            out,
            "| `{}` {} | {} | {} | {} |",
            c.id,
            c.title.replace('|', "\\|"),
            c.rfc,
            c.level.name(),
            cells.join(" | ")
        );
    }
    let failed: Vec<&Outcome> = first.cases.iter().filter(|c| !c.passed).collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nWhy {} fails:\n", first.name);
        for c in failed {
            let reason = c.reason.as_deref().unwrap_or("").replace('\n', " ");
            let _ = writeln!(out, "* `{}` ({}): {reason}", c.id, c.level.name());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, level: Level, passed: bool) -> Outcome {
        Outcome {
            id: id.into(),
            rfc: "RFC 9111 §4".into(),
            level,
            title: "t | u".into(),
            passed,
            reason: (!passed).then(|| "because".into()),
            ms: 1,
        }
    }

    #[test]
    fn scores_count_by_level() {
        let r = Report::new(
            "x".into(),
            "http://p".into(),
            10,
            vec![
                outcome("a", Level::Must, true),
                outcome("b", Level::Must, false),
                outcome("c", Level::May, true),
            ],
        );
        assert_eq!(r.score_line(), "2/3 passed, MUST 1/2, MAY 1/1");
        assert!(r.text().contains("FAIL  b"));
        assert!(r.text().contains("      because"));
    }

    #[test]
    fn markdown_puts_runs_side_by_side() {
        let a = Report::new(
            "k".into(),
            "p".into(),
            1,
            vec![outcome("a", Level::Must, true)],
        );
        let b = Report::new(
            "n".into(),
            "p".into(),
            1,
            vec![outcome("a", Level::Must, false)],
        );
        let md = markdown(&[a, b.clone()]);
        assert!(md.contains("| MUST | 1/1 | 0/1 |"));
        assert!(md.contains("| `a` t \\| u | RFC 9111 §4 | MUST | pass | **fail** |"));
        assert!(!md.contains("Why k fails"));
        let md = markdown(&[b]);
        assert!(md.contains("Why n fails:\n\n* `a` (MUST): because"));
    }
}
