//! Users: created and updated by themselves or by the app's servers.

use serde::Deserialize;

use std::sync::Arc;

use super::{validate, Context};
use crate::auth::Identity;
use crate::error::{Error, Result};
use crate::model::{Custom, Patch, UserPatch, UserSnapshot};
use crate::operation;
use crate::ports::{ItemReader, UserWriter};
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

operation! {
    /// `PUT /users/{userId}`.
    pub struct PutUser {
        ctx: Context,
        users: Arc<dyn UserWriter>,
    }
}

operation! {
    /// `GET /users/{userId}`.
    pub struct GetUser {
        ctx: Context,
        items: Arc<dyn ItemReader>,
    }
}

impl PutUser {
    pub async fn run(
        &self,
        identity: &Identity,
        user_id: &str,
        body: PutUserBody,
    ) -> Result<UserSnapshot> {
        self.ctx.check_id("userId", user_id)?;
        check_self_or_secret(identity, user_id)?;
        if !body.role.is_absent() && *identity != Identity::Secret {
            return Err(Error::forbidden(
                "only the secret key can set a user's role",
            ));
        }
        let limits = &self.ctx.config().limits;
        if let Patch::Value(v) = &body.name {
            validate::short_text(limits, "name", v)?;
        }
        if let Patch::Value(url) = &body.photo_url {
            validate::url_field(limits, "photoUrl", url)?;
        }
        if let Patch::Value(role) = &body.role {
            self.ctx.check_id("role", role)?;
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
        let now = self.ctx.now_ms();
        let user = self
            .users
            .upsert_user(user_id, &patch, now, self.ctx.record_expiry(now))
            .await?;
        Ok(UserSnapshot::of(user_id, Some(&user)))
    }
}

impl GetUser {
    pub async fn run(&self, identity: &Identity, user_id: &str) -> Result<UserSnapshot> {
        self.ctx.check_id("userId", user_id)?;
        check_self_or_secret(identity, user_id)?;
        let keys = vec![ItemKey::User(user_id.to_string())];
        let items = self.ctx.get(&*self.items, keys).await?;
        let user = items
            .users
            .get(user_id)
            .ok_or_else(|| Error::not_found(format!("user {user_id:?} not found")))?;
        Ok(UserSnapshot::of(user_id, Some(user)))
    }
}

fn check_self_or_secret(identity: &Identity, user_id: &str) -> Result<()> {
    match identity {
        Identity::Secret => Ok(()),
        Identity::User { user_id: me, .. } if me == user_id => Ok(()),
        Identity::User { .. } => Err(Error::forbidden(
            "a user token can only read or change its own user",
        )),
    }
}
