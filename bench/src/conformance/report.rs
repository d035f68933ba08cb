//! A run's report: per-case lines and a score by level (text), the same as JSON,
//! and several runs side by side as a Markdown table. A case whose precondition
//! did not hold (n/a) counts neither as passed nor as failed.

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
    /// Cases passed, of those that could run (not n/a).
    pub passed: usize,
    pub total: usize,
    /// Cases whose precondition did not hold (see [`Outcome::unmet`]).
    #[serde(default)]
    pub unmet: usize,
    /// The same per level.
    pub levels: BTreeMap<Level, Score>,
    pub cases: Vec<Outcome>,
}

/// Passed of `total` cases that could run, and `unmet` ones that could not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub passed: usize,
    pub total: usize,
    #[serde(default)]
    pub unmet: usize,
}

impl Score {
    fn add(&mut self, c: &Outcome) {
        if c.unmet {
            self.unmet += 1;
        } else {
            self.total += 1;
            self.passed += usize::from(c.passed);
        }
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.passed, self.total)?;
        if self.unmet > 0 {
            write!(f, " ({} n/a)", self.unmet)?;
        }
        Ok(())
    }
}

impl Report {
    pub fn new(name: String, proxy: String, elapsed_ms: u64, cases: Vec<Outcome>) -> Report {
        let mut overall = Score::default();
        let mut levels: BTreeMap<Level, Score> = BTreeMap::new();
        for c in &cases {
            overall.add(c);
            levels.entry(c.level).or_default().add(c);
        }
        Report {
            name,
            proxy,
            elapsed_ms,
            passed: overall.passed,
            total: overall.total,
            unmet: overall.unmet,
            levels,
            cases,
        }
    }

    pub fn score(&self) -> Score {
        Score {
            passed: self.passed,
            total: self.total,
            unmet: self.unmet,
        }
    }

    /// `passed/total` overall and per level, on one line.
    pub fn score_line(&self) -> String {
        let mut s = format!("{} passed", self.score());
        for (level, score) in &self.levels {
            let _ = write!(s, ", {} {score}", level.name());
        }
        s
    }

    /// One line per case (failures with their reason), then the score.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.cases {
            let mark = match (c.passed, c.unmet) {
                (true, _) => "pass",
                (false, true) => "n/a ",
                (false, false) => "FAIL",
            };
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
                r.levels
                    .get(&level)
                    .copied()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", level.name(), cells.join(" | "));
    }
    let totals: Vec<String> = runs.iter().map(|r| format!("**{}**", r.score())).collect();
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
                Some(o) if o.unmet => "n/a",
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
            unmet: false,
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
        let mut unmet = outcome("d", Level::May, false);
        unmet.unmet = true;
        let r = Report::new(
            "x".into(),
            "p".into(),
            1,
            vec![outcome("a", Level::May, true), unmet],
        );
        assert_eq!(r.score_line(), "1/1 (1 n/a) passed, MAY 1/1 (1 n/a)");
        assert!(r.text().contains("n/a   d"));
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
