//! Deployment configuration: retention, limits and role grants. Every limit lives here.

use std::collections::HashMap;

use serde::Deserialize;

/// Size and count limits. One place, read by validation and documented in the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body the API accepts, in bytes (larger is 413).
    pub max_body_bytes: usize,
    /// Largest message content, serialized as JSON, in bytes.
    pub max_content_bytes: usize,
    /// Largest message text before parsing, in bytes.
    pub max_text_bytes: usize,
    /// Most keys in a `custom` map.
    pub max_custom_keys: usize,
    /// Longest `custom` key, in characters.
    pub max_custom_key_chars: usize,
    /// Longest `custom` string value, in bytes.
    pub max_custom_value_bytes: usize,
    /// Longest id (user, conversation, message, idempotency key), in characters.
    pub max_id_chars: usize,
    /// Longest user name, conversation subject or photo URL, in characters.
    pub max_name_chars: usize,
    /// Most participants named in one conversation PUT.
    pub max_participants_per_request: usize,
    /// Most messages in one import request.
    pub max_import_messages: usize,
    /// Most messages in one page or window step.
    pub max_page: usize,
    /// Page size when none is given.
    pub default_page: usize,
    /// Most distinct reactions on one message.
    pub max_distinct_reactions: usize,
    /// Largest inbox message, serialized as JSON, in bytes.
    pub max_inbox_message_bytes: usize,
    /// Most recipients of one inbox message.
    pub max_inbox_recipients: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_content_bytes: 64 * 1024,
            max_text_bytes: 64 * 1024,
            max_custom_keys: 50,
            max_custom_key_chars: 64,
            max_custom_value_bytes: 4 * 1024,
            max_id_chars: 128,
            max_name_chars: 1024,
            max_participants_per_request: 50,
            max_import_messages: 100,
            max_page: 100,
            default_page: 30,
            max_distinct_reactions: 50,
            max_inbox_message_bytes: 64 * 1024,
            max_inbox_recipients: 100,
        }
    }
}

/// What a role may do with messages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleGrants {
    #[serde(default = "yes")]
    pub edit_own: bool,
    #[serde(default = "yes")]
    pub delete_own: bool,
    #[serde(default)]
    pub edit_any: bool,
    #[serde(default)]
    pub delete_any: bool,
    #[serde(default = "yes")]
    pub react: bool,
    #[serde(default = "yes")]
    pub reply: bool,
    /// May send `link`, `actionLink` and `actionButton` nodes.
    #[serde(default)]
    pub send_links: bool,
}

fn yes() -> bool {
    true
}

impl Default for RoleGrants {
    fn default() -> Self {
        RoleGrants {
            edit_own: true,
            delete_own: true,
            edit_any: false,
            delete_any: false,
            react: true,
            reply: true,
            send_links: false,
        }
    }
}

/// The role table. Unknown roles get the `default` role's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    roles: HashMap<String, RoleGrants>,
}

impl Default for Roles {
    fn default() -> Self {
        let mut roles = HashMap::new();
        roles.insert("default".to_string(), RoleGrants::default());
        roles.insert(
            "moderator".to_string(),
            RoleGrants {
                edit_any: true,
                delete_any: true,
                ..RoleGrants::default()
            },
        );
        Roles { roles }
    }
}

impl Roles {
    /// Parses `{"roleName": {grants...}}`; the given roles are added to (or replace) the defaults.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let given: HashMap<String, RoleGrants> =
            serde_json::from_str(json).map_err(|e| format!("NATTER_ROLES is not valid: {e}"))?;
        let mut roles = Roles::default();
        roles.roles.extend(given);
        Ok(roles)
    }

    /// The names of the configured roles whose grants match `pred`.
    pub fn names_without(&self, pred: impl Fn(&RoleGrants) -> bool) -> Vec<String> {
        let mut names: Vec<String> = self
            .roles
            .iter()
            .filter(|(_, g)| pred(g))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    pub fn grants(&self, role: &str) -> &RoleGrants {
        self.roles
            .get(role)
            .or_else(|| self.roles.get("default"))
            .unwrap_or(&DEFAULT_GRANTS)
    }
}

static DEFAULT_GRANTS: RoleGrants = RoleGrants {
    edit_own: true,
    delete_own: true,
    edit_any: false,
    delete_any: false,
    react: true,
    reply: true,
    send_links: false,
};

/// Everything a handler needs to know about the deployment besides its clients.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long messages, reactions and inbox messages live, in seconds.
    pub retention_secs: i64,
    /// How long users, conversations and participants live after their last write, in seconds.
    pub record_retention_secs: i64,
    pub limits: Limits,
    pub roles: Roles,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retention_secs: 30 * 86_400,
            record_retention_secs: 365 * 86_400,
            limits: Limits::default(),
            roles: Roles::default(),
        }
    }
}

impl Config {
    /// Reads `RETENTION_DAYS`, `RETENTION_SECONDS` (wins when set), `RECORD_RETENTION_DAYS` and
    /// `NATTER_ROLES` (JSON; empty means the built-in roles).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut config = Config::default();
        let number = |name: &str| -> Result<Option<i64>, String> {
            match get(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<i64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(format!("{name} must be a positive whole number, got {v:?}")),
                },
            }
        };
        if let Some(days) = number("RETENTION_DAYS")? {
            config.retention_secs = days * 86_400;
        }
        if let Some(secs) = number("RETENTION_SECONDS")? {
            config.retention_secs = secs;
        }
        if let Some(days) = number("RECORD_RETENTION_DAYS")? {
            config.record_retention_secs = days * 86_400;
        }
        if let Some(json) = get("NATTER_ROLES").filter(|v| !v.trim().is_empty()) {
            config.roles = Roles::from_json(&json)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_seconds_override_days() {
        let config = Config::from_lookup(|name| match name {
            "RETENTION_DAYS" => Some("7".into()),
            "RETENTION_SECONDS" => Some("5".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.retention_secs, 5);
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.retention_secs, 30 * 86_400);
        assert!(Config::from_lookup(|n| (n == "RETENTION_DAYS").then(|| "-1".into())).is_err());
    }

    #[test]
    fn role_defaults_and_overrides() {
        let roles = Roles::default();
        assert!(!roles.grants("default").edit_any);
        assert!(roles.grants("moderator").delete_any);
        assert!(!roles.grants("unknown").send_links);
        let roles = Roles::from_json(r#"{"bot": {"sendLinks": true}}"#).unwrap();
        assert!(roles.grants("bot").send_links);
        assert!(roles.grants("bot").react);
        assert!(roles.grants("moderator").edit_any);
        assert!(Roles::from_json(r#"{"bot": {"fly": true}}"#).is_err());
    }
}
