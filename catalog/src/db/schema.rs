//! Values the schema's columns give a meaning to, named once for every module that
//! reads or writes them: the region that stands for every region (`rights.region`,
//! `trending.region`), and the `recommendations.subject` of a title's similar list
//! and of a viewer's picks.

/// The region name in a right that stands for every region; also the trending
/// rows that hold every region's views together.
pub const ANY_REGION: &str = "*";

/// The `subject` of a title's similar list.
pub fn item_subject(content_id: &str) -> String {
    format!("item:{content_id}")
}

/// The `subject` of a viewer's picks.
pub fn user_subject(user_id: &str) -> String {
    format!("user:{user_id}")
}
