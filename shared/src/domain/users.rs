//! Users: created and updated by themselves or by the app's servers.

use serde::Deserialize;

use super::{validate, Domain};
use crate::auth::Identity;
use crate::error::{Error, Result};
use crate::model::{Custom, Patch, UserPatch, UserSnapshot};
use crate::store::ItemKey;

/// `PUT /users/{userId}`: absent fields stay as they are, `null` clears.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutUserBody {
    #[serde(default)]
    pub name: Patch<String>,
    #[serde(default)]
    pub photo_url: Patch<String>,
    #[serde(default)]
    pub role: Patch<String>,
    #[serde(default)]
    pub custom: Patch<Custom>,
}

impl Domain {
    pub async fn put_user(
        &self,
        identity: &Identity,
        user_id: &str,
        body: PutUserBody,
    ) -> Result<UserSnapshot> {
        self.check_id("userId", user_id)?;
        self.check_self_or_secret(identity, user_id)?;
        if !body.role.is_absent() && *identity != Identity::Secret {
            return Err(Error::forbidden(
                "only the secret key can set a user's role",
            ));
        }
        let limits = &self.config.limits;
        for (field, value) in [("name", &body.name), ("photoUrl", &body.photo_url)] {
            if let Patch::Value(v) = value {
                validate::short_text(limits, field, v)?;
            }
        }
        if let Patch::Value(role) = &body.role {
            self.check_id("role", role)?;
        }
        if let Patch::Value(custom) = &body.custom {
            validate::custom(limits, custom)?;
        }
        let patch = UserPatch {
            name: body.name,
            photo_url: body.photo_url,
            role: body.role,
            custom: body.custom,
        };
        let now = self.now_ms();
        let user = self
            .store
            .upsert_user(user_id, &patch, now, self.record_expiry(now))
            .await?;
        Ok(UserSnapshot::of(user_id, Some(&user)))
    }

    pub async fn get_user(&self, identity: &Identity, user_id: &str) -> Result<UserSnapshot> {
        self.check_id("userId", user_id)?;
        self.check_self_or_secret(identity, user_id)?;
        let items = self.get(vec![ItemKey::User(user_id.to_string())]).await?;
        let user = items
            .users
            .get(user_id)
            .ok_or_else(|| Error::not_found(format!("user {user_id:?} not found")))?;
        Ok(UserSnapshot::of(user_id, Some(user)))
    }

    fn check_self_or_secret(&self, identity: &Identity, user_id: &str) -> Result<()> {
        match identity {
            Identity::Secret => Ok(()),
            Identity::User { user_id: me, .. } if me == user_id => Ok(()),
            Identity::User { .. } => Err(Error::forbidden(
                "a user token can only read or change its own user",
            )),
        }
    }
}
