//! The fold: how a viewer's events for one title become that title's watch state
//! (resume point, progress, played flag, play count, watch time). A pure function,
//! so that its rules are tested without a database.
//!
//! Rules:
//! * Events are ordered by `(at, seq)`. An event older than the state's last one
//!   (a late or replayed upload) never moves the position back; it still counts a
//!   view (`start`) and can still mark the title played (`complete`, or a position
//!   past the played threshold).
//! * Progress is `position / duration`. Below `resume_min` there is no resume point
//!   (the viewer barely started); at or above `played` the title is played and the
//!   resume point is cleared (they finished it). A `complete` event is played too.
//! * `played` is sticky: watching a played title again keeps it played, and a new
//!   resume point appears as the re-watch passes `resume_min`.
//! * Watch time is forward progress within one session: the position gained since
//!   that session's previous event, at most the wall time between them plus one
//!   second. Seeks, starts and late events add none, so a seek forward is not
//!   watched time and a replayed batch adds nothing.
//! * A newer event unhides a title hidden from "continue watching".
//!
//! Duplicates never reach the fold: the writer drops events whose
//! `(user, session_id, seq)` is already in the log.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a player reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Playback of a session began (counts one view).
    Start,
    /// A periodic position report while playing.
    Progress,
    Pause,
    /// The viewer jumped; `position_ms` is where they landed.
    Seek,
    /// The viewer left before the end.
    Stop,
    /// The end was reached.
    Complete,
}

impl EventKind {
    /// The name stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::Progress => "progress",
            EventKind::Pause => "pause",
            EventKind::Seek => "seek",
            EventKind::Stop => "stop",
            EventKind::Complete => "complete",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "start" => EventKind::Start,
            "progress" => EventKind::Progress,
            "pause" => EventKind::Pause,
            "seek" => EventKind::Seek,
            "stop" => EventKind::Stop,
            "complete" => EventKind::Complete,
            _ => return None,
        })
    }
}

/// One watch event of a viewer (the viewer is implied by the caller).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub content_id: String,
    pub session_id: String,
    pub seq: i64,
    pub position_ms: i64,
    pub duration_ms: i64,
    pub kind: EventKind,
    /// When it happened, by the player's clock, Unix ms.
    pub at: i64,
}

/// Where a viewer stands in one title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchState {
    /// The position of the newest event.
    pub position_ms: i64,
    pub duration_ms: i64,
    /// Where to resume: `None` below the resume threshold and once finished.
    pub resume_ms: Option<i64>,
    pub played: bool,
    /// Sessions started (`start` events).
    pub play_count: i64,
    /// Watch time this viewer spent on it.
    pub watched_ms: i64,
    pub first_at: i64,
    pub last_at: i64,
    pub last_session: String,
    pub last_seq: i64,
    /// The viewer's region at the newest event (`""` = unknown).
    pub region: String,
    /// Hidden from "continue watching" (the position is kept).
    pub hidden: bool,
}

impl WatchState {
    /// Progress in `[0, 1]` by the newest event.
    pub fn progress(&self) -> f64 {
        if self.duration_ms > 0 {
            (self.position_ms as f64 / self.duration_ms as f64).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// The resume and played thresholds, as fractions of the duration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// No resume point below this (default 0.05).
    pub resume_min: f64,
    /// Played at or above this (default 0.90).
    pub played: f64,
    /// A view (for trending and the per-title counters) counts at an event that
    /// starts or advances playback once the viewer's watch time on the title since
    /// their last counted view reaches this, in ms (default 30 s)…
    pub view_min_watch_ms: i64,
    /// …and at most once per viewer × title in this long, in ms (default 24 h).
    pub view_window_ms: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            resume_min: 0.05,
            played: 0.90,
            view_min_watch_ms: 30_000,
            view_window_ms: 86_400_000,
        }
    }
}

/// Slack allowed between position gained and wall time passed, in ms.
const WATCH_SLACK_MS: i64 = 1_000;

/// Folds `events` (new, deduplicated, all for the same title) into `prev`, the
/// state before them, for a viewer in `region`. Returns the new state and, in the
/// order of `events`, the watch time each event added.
pub fn fold(
    prev: Option<WatchState>,
    events: &[&Event],
    region: &str,
    th: Thresholds,
) -> Option<(WatchState, Vec<i64>)> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (events[a], events[b]);
        (x.at, x.seq, &x.session_id).cmp(&(y.at, y.seq, &y.session_id))
    });
    let mut added = vec![0; events.len()];
    let mut state = prev;
    for i in order {
        let e = events[i];
        let progress = if e.duration_ms > 0 {
            e.position_ms as f64 / e.duration_ms as f64
        } else {
            0.0
        };
        let finished = e.kind == EventKind::Complete || progress >= th.played;
        let view = i64::from(e.kind == EventKind::Start);
        let Some(s) = state.as_mut() else {
            state = Some(WatchState {
                position_ms: e.position_ms,
                duration_ms: e.duration_ms,
                resume_ms: resume_point(e, progress, finished, th),
                played: finished,
                play_count: view,
                watched_ms: 0,
                first_at: e.at,
                last_at: e.at,
                last_session: e.session_id.clone(),
                last_seq: e.seq,
                region: region.to_string(),
                hidden: false,
            });
            continue;
        };
        s.play_count += view;
        s.played |= finished;
        s.first_at = s.first_at.min(e.at);
        let newer = (e.at, e.seq) > (s.last_at, s.last_seq);
        if !newer {
            continue;
        }
        if e.session_id == s.last_session && !matches!(e.kind, EventKind::Seek | EventKind::Start) {
            let gained = e.position_ms - s.position_ms;
            let elapsed = (e.at - s.last_at).max(0) + WATCH_SLACK_MS;
            added[i] = gained.clamp(0, elapsed);
            s.watched_ms += added[i];
        }
        s.position_ms = e.position_ms;
        if e.duration_ms > 0 {
            s.duration_ms = e.duration_ms;
        }
        s.resume_ms = resume_point(e, progress, finished, th);
        s.last_at = e.at;
        s.last_seq = e.seq;
        s.last_session = e.session_id.clone();
        s.region = region.to_string();
        s.hidden = false;
    }
    state.map(|s| (s, added))
}

fn resume_point(e: &Event, progress: f64, finished: bool, th: Thresholds) -> Option<i64> {
    (!finished && progress >= th.resume_min).then_some(e.position_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(session: &str, seq: i64, kind: EventKind, pos: i64, at: i64) -> Event {
        Event {
            content_id: "c".into(),
            session_id: session.into(),
            seq,
            position_ms: pos,
            duration_ms: 100_000,
            kind,
            at,
        }
    }

    fn run(prev: Option<WatchState>, events: &[Event]) -> (WatchState, Vec<i64>) {
        let refs: Vec<&Event> = events.iter().collect();
        fold(prev, &refs, "eu", Thresholds::default()).expect("state")
    }

    use EventKind::*;

    #[test]
    fn thresholds_decide_resume_and_played() {
        // 4% in: no resume point yet.
        let (s, _) = run(
            None,
            &[ev("a", 0, Start, 0, 0), ev("a", 1, Progress, 4_000, 4_000)],
        );
        assert_eq!(s.resume_ms, None);
        assert!(!s.played);
        // 5% exactly: a resume point.
        let (s, _) = run(Some(s), &[ev("a", 2, Progress, 5_000, 5_000)]);
        assert_eq!(s.resume_ms, Some(5_000));
        // 89.9%: still resumable, not played.
        let (s, _) = run(Some(s), &[ev("a", 3, Pause, 89_900, 89_900)]);
        assert_eq!((s.resume_ms, s.played), (Some(89_900), false));
        // 90%: played, the resume point goes away.
        let (s, _) = run(Some(s), &[ev("a", 4, Progress, 90_000, 90_000)]);
        assert_eq!((s.resume_ms, s.played), (None, true));
        // Watching again keeps it played, and resumable again past 5%.
        let (s, _) = run(
            Some(s),
            &[
                ev("b", 0, Start, 0, 200_000),
                ev("b", 1, Progress, 30_000, 230_000),
            ],
        );
        assert_eq!(
            (s.resume_ms, s.played, s.play_count),
            (Some(30_000), true, 2)
        );
        // `complete` is played whatever the position says.
        let (s, _) = run(None, &[ev("c", 0, Complete, 10_000, 1)]);
        assert!(s.played && s.resume_ms.is_none());
    }

    #[test]
    fn watch_time_is_forward_progress_within_a_session() {
        let (s, added) = run(
            None,
            &[
                ev("a", 0, Start, 0, 1_000),
                ev("a", 1, Progress, 10_000, 11_000),
                ev("a", 2, Seek, 60_000, 12_000),
                ev("a", 3, Progress, 70_000, 22_000),
                // A position far past the wall time passed is capped by it.
                ev("a", 4, Progress, 95_000, 23_000),
            ],
        );
        assert_eq!(added, vec![0, 10_000, 0, 10_000, 2_000]);
        assert_eq!(s.watched_ms, 22_000);
        // Another session's event adds no watch time against this one's position.
        let (s, added) = run(Some(s), &[ev("b", 0, Progress, 99_000, 30_000)]);
        assert_eq!((added, s.watched_ms), (vec![0], 22_000));
    }

    #[test]
    fn out_of_order_events_never_move_the_position_back() {
        let all = [
            ev("a", 0, Start, 0, 0),
            ev("a", 1, Progress, 20_000, 20_000),
            ev("a", 2, Progress, 40_000, 40_000),
            ev("a", 3, Pause, 50_000, 50_000),
        ];
        // In one batch, in any order: the same state as in order.
        let (in_order, _) = run(None, &all);
        let shuffled = [
            all[2].clone(),
            all[0].clone(),
            all[3].clone(),
            all[1].clone(),
        ];
        let (s, _) = run(None, &shuffled);
        assert_eq!(s, in_order);
        assert_eq!(s.resume_ms, Some(50_000));
        // Across batches: the late one arrives after a newer one was folded.
        let (s, _) = run(None, &[all[0].clone(), all[3].clone()]);
        let (s, added) = run(Some(s), &[all[1].clone()]);
        assert_eq!(
            (s.position_ms, s.resume_ms, s.last_seq),
            (50_000, Some(50_000), 3)
        );
        assert_eq!(added, vec![0]);
        // A late `complete` still marks it played.
        let (s, _) = run(Some(s), &[ev("a", 9, Complete, 100_000, 45_000)]);
        assert!(s.played);
        assert_eq!(s.position_ms, 50_000);
    }

    #[test]
    fn a_newer_event_unhides_and_counts_views() {
        let (mut s, _) = run(
            None,
            &[
                ev("a", 0, Start, 0, 0),
                ev("a", 1, Progress, 30_000, 30_000),
            ],
        );
        s.hidden = true;
        let (s2, _) = run(Some(s.clone()), &[ev("a", 0, Start, 0, 0)]);
        assert!(s2.hidden, "an old event leaves it hidden");
        assert_eq!(s2.play_count, 2, "a late start still counts a view");
        let (s3, _) = run(Some(s), &[ev("a", 2, Progress, 31_000, 31_000)]);
        assert!(!s3.hidden);
        assert_eq!(s3.play_count, 1);
    }

    #[test]
    fn kinds_round_trip() {
        for k in [Start, Progress, Pause, Seek, Stop, Complete] {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("ended"), None);
    }
}
