//! Whether a query's filter selects this member. A pattern that does not compile, or that
//! passes the size limits, matches nothing: it never fails the node.

use super::msg::QueryFilter;
use super::{MAX_FILTER_NODES, MAX_FILTER_TAGS, MAX_TAG_PATTERN};
use crate::member::Tags;

/// Compiled size a tag pattern may take.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// True if `filter` selects the member `name` with `tags`.
pub fn selects(filter: &QueryFilter, name: &str, tags: &Tags) -> bool {
    if filter.nodes.len() > MAX_FILTER_NODES || filter.tags.len() > MAX_FILTER_TAGS {
        return false;
    }
    if !filter.nodes.is_empty() && !filter.nodes.iter().any(|n| n == name) {
        return false;
    }
    filter.tags.iter().all(|(key, pattern)| {
        let Some(value) = tags.get(key) else {
            return false;
        };
        compile(pattern).is_some_and(|re| re.is_match(value))
    })
}

/// `pattern` compiled, if it is within the limits and valid.
pub(super) fn compile(pattern: &str) -> Option<regex::Regex> {
    if pattern.len() > MAX_TAG_PATTERN {
        return None;
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}
