//! TEMPORARY STUB until the format module lands.
use crate::content::Content;
pub fn parse_text(_t: &str) -> Content { Vec::new() }
