//! The channels gRPC service: the table of RPCs, and the channel operations. Member
//! operations are in `members.rs`; the rules themselves in `permissions.rs`.

use chrono::{DateTime, Utc};
use hilo_kit::grpc::RetryingChannel;
use hilo_kit::{
    auth::{Caller, TokenVerifier},
    grpc::reply,
    outbox::{self, Relay},
    validate::{self, Invalid, Violations},
};
use hilo_proto::{
    Timestamp,
    accounts::v1::accounts_service_client::AccountsServiceClient,
    channels::v1::{self as pb, channels_service_server::ChannelsService},
    subjects,
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    db::{self, ChannelAccess, ChannelPatch, ChannelRow, NewChannel},
    error::{Error, Result},
    permissions::{Action, Decision, Role, decide},
};

const NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 500;
const CATEGORY_MAX: usize = 50;
const DEFAULT_CATEGORY: &str = "General";
pub(crate) const LIMIT_MAX: i32 = 100;

/// State of the channels service; cheap to clone.
#[derive(Clone)]
pub struct ChannelsRpc {
    pub pool: PgPool,
    pub verifier: TokenVerifier,
    /// For members' names and avatars, called with the caller's own token.
    pub accounts: AccountsServiceClient<RetryingChannel>,
    pub relay: Relay,
}

/// The gRPC surface: every RPC authenticates its caller, then runs the operation.
#[tonic::async_trait]
impl ChannelsService for ChannelsRpc {
    async fn list_channels(
        &self,
        r: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.list(caller, r.into_inner()).await)
    }

    async fn get_channel(
        &self,
        r: Request<pb::GetChannelRequest>,
    ) -> Result<Response<pb::GetChannelResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.get(caller, r.into_inner().channel_id).await)
    }

    async fn create_channel(
        &self,
        r: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::CreateChannelResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.create(caller, r.into_inner()).await)
    }

    async fn update_channel(
        &self,
        r: Request<pb::UpdateChannelRequest>,
    ) -> Result<Response<pb::UpdateChannelResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.update(caller, r.into_inner()).await)
    }

    async fn delete_channel(
        &self,
        r: Request<pb::DeleteChannelRequest>,
    ) -> Result<Response<pb::DeleteChannelResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.delete(caller, r.into_inner().channel_id).await)
    }

    async fn list_joined_channels(
        &self,
        r: Request<pb::ListJoinedChannelsRequest>,
    ) -> Result<Response<pb::ListJoinedChannelsResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.joined(caller).await)
    }

    async fn list_members(
        &self,
        r: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.members(caller, r.into_inner()).await)
    }

    async fn get_member(
        &self,
        r: Request<pb::GetMemberRequest>,
    ) -> Result<Response<pb::GetMemberResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.member(caller, r.into_inner()).await)
    }

    async fn join_channel(
        &self,
        r: Request<pb::JoinChannelRequest>,
    ) -> Result<Response<pb::JoinChannelResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.join(caller, r.into_inner()).await)
    }

    async fn add_member(
        &self,
        r: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.add(caller, r.into_inner()).await)
    }

    async fn update_member_role(
        &self,
        r: Request<pb::UpdateMemberRoleRequest>,
    ) -> Result<Response<pb::UpdateMemberRoleResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.change_role(caller, r.into_inner()).await)
    }

    async fn remove_member(
        &self,
        r: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.remove(caller, r.into_inner()).await)
    }

    async fn create_invite(
        &self,
        r: Request<pb::CreateInviteRequest>,
    ) -> Result<Response<pb::CreateInviteResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.invite(caller, r.into_inner()).await)
    }

    async fn check_permission(
        &self,
        r: Request<pb::CheckPermissionRequest>,
    ) -> Result<Response<pb::CheckPermissionResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.check(caller, r.into_inner()).await)
    }
}

impl ChannelsRpc {
    async fn list(
        &self,
        caller: Caller,
        req: pb::ListChannelsRequest,
    ) -> Result<pb::ListChannelsResponse> {
        let limit = if req.limit <= 0 {
            10
        } else {
            req.limit.min(LIMIT_MAX)
        };
        let page = req.page.max(1);
        let offset = i64::from(page - 1) * i64::from(limit);
        let rows = db::list_visible(&self.pool, &caller.user_id, limit.into(), offset).await?;
        let total = db::count_visible(&self.pool, &caller.user_id).await?;
        Ok(pb::ListChannelsResponse {
            channels: rows.into_iter().map(channel_pb).collect(),
            total,
        })
    }

    async fn get(&self, caller: Caller, channel_id: String) -> Result<pb::GetChannelResponse> {
        let (_, access) = self.access(&channel_id, &caller).await?;
        authorize(&access, &caller, Action::See)?;
        Ok(pb::GetChannelResponse {
            channel: Some(channel_pb(access.channel)),
        })
    }

    async fn create(
        &self,
        caller: Caller,
        req: pb::CreateChannelRequest,
    ) -> Result<pb::CreateChannelResponse> {
        let mut v = Violations::default();
        let new = NewChannel {
            name: v
                .check(validate::text("name", &req.name, NAME_MAX))
                .unwrap_or_default(),
            description: req
                .description
                .and_then(|d| v.check(validate::at_most("description", &d, DESCRIPTION_MAX))),
            is_private: req.is_private,
            image_url: req
                .image_url
                .and_then(|u| v.check(validate::http_url("imageUrl", &u))),
            banner_url: req
                .banner_url
                .and_then(|u| v.check(validate::http_url("bannerUrl", &u))),
            category: match req.category {
                Some(c) => v
                    .check(validate::text("category", &c, CATEGORY_MAX))
                    .unwrap_or_default(),
                None => DEFAULT_CATEGORY.to_owned(),
            },
        };
        v.finish()?;
        let mut tx = self.pool.begin().await?;
        let channel = db::insert_channel(&mut *tx, &caller.user_id, &new).await?;
        db::insert_member(&mut *tx, channel.id, &caller.user_id, Role::Admin.as_str()).await?;
        tx.commit().await?;
        tracing::info!(channel_id = %channel.id, "channel created");
        Ok(pb::CreateChannelResponse {
            channel: Some(channel_pb(channel)),
        })
    }

    async fn update(
        &self,
        caller: Caller,
        req: pb::UpdateChannelRequest,
    ) -> Result<pb::UpdateChannelResponse> {
        let (id, access) = self.access(&req.channel_id, &caller).await?;
        authorize(&access, &caller, Action::Administer)?;
        let mut v = Violations::default();
        let patch = ChannelPatch {
            name: req
                .name
                .and_then(|n| v.check(validate::text("name", &n, NAME_MAX))),
            description: req.description.map(|d| {
                d.value
                    .and_then(|d| v.check(validate::at_most("description", &d, DESCRIPTION_MAX)))
            }),
            is_private: req.is_private,
            image_url: req.image_url.map(|u| {
                u.value
                    .and_then(|u| v.check(validate::http_url("imageUrl", &u)))
            }),
            banner_url: req.banner_url.map(|u| {
                u.value
                    .and_then(|u| v.check(validate::http_url("bannerUrl", &u)))
            }),
            category: req
                .category
                .and_then(|c| v.check(validate::text("category", &c, CATEGORY_MAX))),
        };
        v.finish()?;
        let channel = db::update_channel(&self.pool, id, &patch).await?;
        Ok(pb::UpdateChannelResponse {
            channel: Some(channel_pb(channel)),
        })
    }

    async fn delete(
        &self,
        caller: Caller,
        channel_id: String,
    ) -> Result<pb::DeleteChannelResponse> {
        let (id, access) = self.access(&channel_id, &caller).await?;
        authorize(&access, &caller, Action::Administer)?;
        let mut tx = self.pool.begin().await?;
        // Only the transaction that really deleted the row announces it: exactly one event.
        if db::delete_channel(&mut *tx, id).await? {
            let event = serde_json::json!({ "type": "channel.deleted", "channelId": id });
            outbox::enqueue(&mut tx, subjects::CHANNEL_DELETED, event).await?;
        }
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(channel_id = %id, "channel deleted");
        Ok(pb::DeleteChannelResponse {})
    }

    async fn joined(&self, caller: Caller) -> Result<pb::ListJoinedChannelsResponse> {
        let rows = db::list_joined(&self.pool, &caller.user_id).await?;
        Ok(pb::ListJoinedChannelsResponse {
            channels: rows.into_iter().map(channel_pb).collect(),
        })
    }

    async fn check(
        &self,
        caller: Caller,
        req: pb::CheckPermissionRequest,
    ) -> Result<pb::CheckPermissionResponse> {
        // Callers ask about themselves (services forward the user's own token).
        if caller.user_id != req.user_id {
            return Err(Error::Forbidden(
                "Permission checks are only answered about the caller".to_owned(),
            ));
        }
        let is_owner = req.owner_id.as_deref() == Some(req.user_id.as_str());
        let action = match pb::Action::try_from(req.action).unwrap_or_default() {
            pb::Action::Read => Action::Read,
            pb::Action::Post => Action::Post,
            pb::Action::UpdateThread => Action::UpdateThread {
                is_creator: is_owner,
            },
            pb::Action::DeleteThread => Action::DeleteThread {
                is_creator: is_owner,
            },
            pb::Action::ArchiveThread => Action::ArchiveThread {
                is_creator: is_owner,
            },
            pb::Action::DeleteMessage => Action::DeleteMessage {
                is_author: is_owner,
            },
            pb::Action::EditMessage => Action::EditMessage {
                is_author: is_owner,
            },
            pb::Action::Unspecified => {
                return Err(Invalid::field(
                    validate::VALIDATION_ERROR,
                    "action",
                    "action is required",
                )
                .into());
            }
        };
        let Some(access) = self.find(&req.channel_id, &caller).await? else {
            return Ok(pb::CheckPermissionResponse {
                allowed: false,
                visible: false,
                role: 0,
            });
        };
        let role = access.role.as_deref().and_then(Role::parse);
        let decision = decide(role, access.channel.is_private, action);
        Ok(pb::CheckPermissionResponse {
            allowed: decision == Decision::Allow,
            visible: decision != Decision::Hidden,
            role: role.map(role_pb).unwrap_or_default() as i32,
        })
    }

    /// The channel and the caller's role, or `None` when the id is malformed or unknown.
    pub(crate) async fn find(
        &self,
        channel_id: &str,
        caller: &Caller,
    ) -> Result<Option<ChannelAccess>> {
        let Ok(id) = Uuid::parse_str(channel_id) else {
            return Ok(None);
        };
        Ok(db::channel_access(&self.pool, id, &caller.user_id).await?)
    }

    /// Like [`Self::find`], but a missing channel is an error.
    pub(crate) async fn access(
        &self,
        channel_id: &str,
        caller: &Caller,
    ) -> Result<(Uuid, ChannelAccess)> {
        let access = self
            .find(channel_id, caller)
            .await?
            .ok_or_else(|| Error::ChannelNotFound(channel_id.to_owned()))?;
        Ok((access.channel.id, access))
    }
}

/// Applies the rule book; returns the caller's role when allowed.
pub(crate) fn authorize(
    access: &ChannelAccess,
    caller: &Caller,
    action: Action,
) -> Result<Option<Role>> {
    let role = access.role.as_deref().and_then(Role::parse);
    match decide(role, access.channel.is_private, action) {
        Decision::Allow => Ok(role),
        Decision::Hidden => Err(Error::ChannelNotFound(access.channel.id.to_string())),
        Decision::Deny if role.is_none() => Err(Error::Forbidden(format!(
            "User '{}' is not authorized to access channel '{}'",
            caller.user_id, access.channel.id
        ))),
        Decision::Deny => Err(Error::Forbidden(
            "Insufficient permissions: 'admin' role required to perform this action".to_owned(),
        )),
    }
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub(crate) fn role_pb(role: Role) -> pb::Role {
    match role {
        Role::Member => pb::Role::Member,
        Role::Moderator => pb::Role::Moderator,
        Role::Admin => pb::Role::Admin,
    }
}

fn channel_pb(row: ChannelRow) -> pb::Channel {
    pb::Channel {
        id: row.id.to_string(),
        name: row.name,
        description: row.description,
        is_private: row.is_private,
        image_url: row.image_url,
        banner_url: row.banner_url,
        category: row.category,
        owner_id: row.owner_id,
        create_time: Some(timestamp(row.created_at)),
    }
}
