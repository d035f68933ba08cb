//! Content lists: paging, full-text search, filters by category, kind and
//! availability in the caller's region, and sorts. One query shape for both
//! databases, except for search: PostgreSQL matches a `tsvector` column (GIN
//! index), SQLite an FTS5 table kept in step by triggers (migration 0002).
//!
//! Every value is a bind parameter; search text is reduced to words of letters
//! and digits before it reaches either full-text syntax, so nothing a user types
//! can change a query's meaning.

use sqlx::{AssertSqlSafe, Row};

use crate::db::{map_err, Backend, Db, DbError};
use crate::meta::ANY_REGION;

/// Which rights a listed title must have in the caller's region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Availability {
    /// Watchable now.
    #[default]
    Now,
    /// Not watchable yet, but a window opens later.
    Upcoming,
    /// Everything, whatever its rights (admins only).
    All,
}

/// The order of a list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Most recently added first.
    #[default]
    Newest,
    /// By title, case-insensitively.
    Title,
    /// Most trending first in the caller's region (the time-decayed score of watch
    /// history); titles never watched after them, by playback URLs issued.
    Trending,
    /// Best match first (only meaningful with a search; otherwise newest).
    Relevance,
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct ContentQuery {
    /// The caller's region; `None` sees only titles licensed everywhere (`*`).
    pub region: Option<String>,
    pub availability: Availability,
    /// "Now" for the rights windows, in Unix milliseconds.
    pub now_ms: i64,
    pub category: Option<String>,
    pub kind: Option<String>,
    /// Search text as the user typed it.
    pub search: Option<String>,
    pub sort: Sort,
    pub limit: u32,
    pub offset: u32,
}

/// The most words of a search that are used.
const MAX_TERMS: usize = 8;
/// The longest word of a search that is used, in characters.
const MAX_TERM_CHARS: usize = 64;

/// The words of a search: runs of letters and digits, lowercased, at most
/// `MAX_TERMS` of them. Everything else (quotes, operators, SQL) separates words.
pub fn search_terms(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.chars()
                .take(MAX_TERM_CHARS)
                .collect::<String>()
                .to_lowercase()
        })
        .take(MAX_TERMS)
        .collect()
}

/// A PostgreSQL `to_tsquery` text matching titles that contain every term as a
/// word prefix: `big:* & buck:*`.
pub fn tsquery(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("{t}:*"))
        .collect::<Vec<_>>()
        .join(" & ")
}

/// An FTS5 query matching rows that contain every term as a word prefix, each term
/// a quoted string so that FTS5 operators in it are plain text: `"big"* AND "buck"*`.
pub fn fts5_query(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"*", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

enum Bind {
    Text(String),
    Int(i64),
}

/// A query under construction: SQL text built from constant fragments only, and the
/// values that go with its `$N` placeholders.
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Appends a placeholder for `b` and returns nothing; the caller writes the SQL
    /// around it.
    fn bind(&mut self, b: Bind) {
        self.binds.push(b);
        self.text.push_str(&format!("${}", self.binds.len()));
    }
}

impl Db {
    /// The ids of the titles `q` selects, in order, at most `q.limit` of them.
    pub async fn list_content_ids(&self, q: &ContentQuery) -> Result<Vec<String>, DbError> {
        let backend = self.backend();
        let terms = q.search.as_deref().map(search_terms);
        if terms.as_ref().is_some_and(Vec::is_empty) {
            // A search with no words in it finds nothing.
            return Ok(Vec::new());
        }
        let mut sql = Sql {
            text: String::from("SELECT c.id FROM content c"),
            binds: Vec::new(),
        };
        if let (Some(terms), Backend::Sqlite) = (&terms, backend) {
            // bm25 weights: content_id (unindexed) 0, title 10, description 1.
            sql.push(
                " JOIN (SELECT content_id, bm25(content_fts, 0.0, 10.0, 1.0) AS rank \
                 FROM content_fts WHERE content_fts MATCH ",
            );
            sql.bind(Bind::Text(fts5_query(terms)));
            sql.push(") f ON f.content_id = c.id");
        }
        if q.sort == Sort::Trending {
            // The caller's region's time-decayed score (see `history::trending`).
            sql.push(" LEFT JOIN trending t ON t.content_id = c.id AND t.region = ");
            sql.bind(Bind::Text(
                crate::history::trending::region_key(q.region.as_deref()).to_string(),
            ));
        }
        sql.push(" WHERE 1 = 1");
        if let (Some(terms), Backend::Postgres) = (&terms, backend) {
            sql.push(" AND c.search @@ to_tsquery('simple', ");
            sql.bind(Bind::Text(tsquery(terms)));
            sql.push(")");
        }
        if q.availability != Availability::All {
            sql.push(" AND EXISTS (SELECT 1 FROM rights r WHERE r.content_id = c.id AND ");
            match &q.region {
                Some(region) => {
                    sql.push("r.region IN (");
                    sql.bind(Bind::Text(region.clone()));
                    sql.push(", ");
                    sql.bind(Bind::Text(ANY_REGION.into()));
                    sql.push(")");
                }
                None => {
                    sql.push("r.region = ");
                    sql.bind(Bind::Text(ANY_REGION.into()));
                }
            }
            if q.availability == Availability::Now {
                sql.push(" AND (r.available_from IS NULL OR r.available_from <= ");
                sql.bind(Bind::Int(q.now_ms));
                sql.push(") AND (r.available_until IS NULL OR r.available_until > ");
                sql.bind(Bind::Int(q.now_ms));
                sql.push("))");
            } else {
                sql.push(" AND r.available_from > ");
                sql.bind(Bind::Int(q.now_ms));
                sql.push(")");
            }
        }
        if let Some(category) = &q.category {
            sql.push(
                " AND EXISTS (SELECT 1 FROM content_categories cc \
                 WHERE cc.content_id = c.id AND cc.category = ",
            );
            sql.bind(Bind::Text(category.clone()));
            sql.push(")");
        }
        if let Some(kind) = &q.kind {
            sql.push(" AND c.kind = ");
            sql.bind(Bind::Text(kind.clone()));
        }
        match (q.sort, &terms, backend) {
            (Sort::Relevance, Some(_), Backend::Sqlite) => {
                sql.push(" ORDER BY f.rank ASC, c.created_at DESC, c.id DESC")
            }
            (Sort::Relevance, Some(terms), Backend::Postgres) => {
                sql.push(" ORDER BY ts_rank(c.search, to_tsquery('simple', ");
                sql.bind(Bind::Text(tsquery(terms)));
                sql.push(")) DESC, c.created_at DESC, c.id DESC");
            }
            (Sort::Newest | Sort::Relevance, _, _) => {
                sql.push(" ORDER BY c.created_at DESC, c.id DESC")
            }
            (Sort::Title, _, _) => sql.push(" ORDER BY LOWER(c.title) ASC, c.id ASC"),
            // Titles without watch history after the others, by playback URLs issued
            // (the `views` counter), then newest first.
            (Sort::Trending, _, _) => sql.push(
                " ORDER BY CASE WHEN t.score_log IS NULL THEN 1 ELSE 0 END, t.score_log DESC, \
                 c.views DESC, c.created_at DESC, c.id DESC",
            ),
        }
        sql.push(" LIMIT ");
        sql.bind(Bind::Int(i64::from(q.limit)));
        sql.push(" OFFSET ");
        sql.bind(Bind::Int(i64::from(q.offset)));

        let Sql { text, binds } = sql;
        let mut query = sqlx::query(AssertSqlSafe(text));
        for b in binds {
            query = match b {
                Bind::Text(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
            };
        }
        query
            .fetch_all(self.pool())
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    /// The categories in use, with how many titles each has.
    pub async fn categories(&self) -> Result<Vec<(String, i64)>, DbError> {
        sqlx::query(
            "SELECT category, COUNT(*) AS n FROM content_categories \
             GROUP BY category ORDER BY category",
        )
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_becomes_plain_words() {
        assert_eq!(search_terms("Big Buck"), vec!["big", "buck"]);
        assert_eq!(
            search_terms("'; DROP TABLE content; --"),
            vec!["drop", "table", "content"]
        );
        assert_eq!(
            search_terms("\"a\" OR b* NEAR(c)"),
            vec!["a", "or", "b", "near", "c"]
        );
        assert!(search_terms("'\"*:&|!()").is_empty());
        assert_eq!(search_terms(&"x ".repeat(50)).len(), MAX_TERMS);
        assert_eq!(search_terms(&"y".repeat(500))[0].len(), MAX_TERM_CHARS);
    }

    #[test]
    fn queries_quote_every_term() {
        let t = vec!["big".to_string(), "buck".to_string()];
        assert_eq!(tsquery(&t), "big:* & buck:*");
        assert_eq!(fts5_query(&t), "\"big\"* AND \"buck\"*");
    }
}
