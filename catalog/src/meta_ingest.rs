//! Metadata queries the ingest pipeline needs beyond the model's own: which object
//! keys some asset row still references, asked in batches so that garbage
//! collection over a large store never loads every key of the catalog at once.

use std::collections::HashSet;

use sqlx::{AssertSqlSafe, Row};

use crate::db::{map_err, Db, DbError};

/// How many keys one query asks about; well under SQLite's and PostgreSQL's
/// limits on bound parameters.
const BATCH: usize = 500;

impl Db {
    /// Which of `keys` at least one asset row (of a title or of a user) references.
    pub async fn referenced_object_keys(
        &self,
        keys: &[String],
    ) -> Result<HashSet<String>, DbError> {
        let mut found = HashSet::new();
        for batch in keys.chunks(BATCH) {
            let placeholders = (1..=batch.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT DISTINCT object_key FROM assets WHERE object_key IN ({placeholders})"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for k in batch {
                query = query.bind(k);
            }
            for row in query.fetch_all(self.pool()).await.map_err(map_err)? {
                found.insert(row.try_get::<String, _>(0).map_err(map_err)?);
            }
        }
        Ok(found)
    }
}
