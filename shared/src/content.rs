//! TEMPORARY STUB until the content module lands.
use serde::{Deserialize, Serialize};
pub type Content = Vec<ContentBlock>;
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlock(pub serde_json::Value);
pub fn plaintext(_c: &Content) -> String { String::new() }
pub fn uses_restricted_nodes(_c: &Content) -> bool { false }
pub fn validate(_c: &Content) -> Result<(), String> { Ok(()) }
