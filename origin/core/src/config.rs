//! Configuration helpers every server's config uses: lists and maps that arrive
//! as one string from a flag or an environment variable, or as a TOML value.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Deserializes a list from either a sequence or one comma-separated string, so
/// `--upstream a,b`, `KEYFRAME_UPSTREAM=a,b` and `upstream = ["a", "b"]` all work.
pub fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// What [`string_map`] does with the keys of `KEY=VALUE` text (a table's keys are
/// always kept as written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKeys {
    /// Kept as written (upstream URLs).
    AsWritten,
    /// ASCII-lowercased, for case-insensitive names typed into an environment
    /// variable (the catalog's region names: `EU=…` is `eu`).
    Lowercase,
}

/// Deserializes a map from either a table or one `KEY=VALUE,KEY=VALUE` string, so
/// a flag, an environment variable and a TOML table all work. `shape` names an
/// entry in the error for text without `=` (`URL=PATH`).
pub fn string_map<'de, D: serde::Deserializer<'de>>(
    d: D,
    shape: &str,
    keys: TextKeys,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrMap {
        Text(String),
        Map(BTreeMap<String, String>),
    }
    Ok(match TextOrMap::deserialize(d)? {
        TextOrMap::Map(m) => m,
        TextOrMap::Text(s) => {
            let mut m = BTreeMap::new();
            for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (k, v) = entry
                    .split_once('=')
                    .ok_or_else(|| serde::de::Error::custom(format!("'{entry}' is not {shape}")))?;
                let k = match keys {
                    TextKeys::AsWritten => k.trim().to_string(),
                    TextKeys::Lowercase => k.trim().to_ascii_lowercase(),
                };
                m.insert(k, v.trim().to_string());
            }
            m
        }
    })
}
