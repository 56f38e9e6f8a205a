//! Member operations of the channels service: listing, joining (with invites for private
//! channels), adding, role changes and removal, with the last-admin rule.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use hilo_kit::{
    auth::Caller,
    grpc, outbox,
    validate::{self, Invalid},
};
use hilo_proto::{accounts::v1 as accounts, channels::v1 as pb, subjects};
use rand::{Rng, distr::Alphanumeric};

use crate::{
    db::{self, MemberRow},
    error::{Error, Result},
    permissions::{Action, Role},
    rpc::{ChannelsRpc, LIMIT_MAX, authorize, role_pb, timestamp},
};

const INVITE_DEFAULT_SECS: i64 = 7 * 24 * 3600;
const INVITE_MAX_SECS: i64 = 30 * 24 * 3600;
const INVITE_MAX_USES: i32 = 10_000;

impl ChannelsRpc {
    pub(crate) async fn members(
        &self,
        caller: Caller,
        req: pb::ListMembersRequest,
    ) -> Result<pb::ListMembersResponse> {
        let (id, access) = self.access(&req.channel_id, &caller).await?;
        authorize(&access, &caller, Action::ListMembers)?;
        let limit = if req.limit <= 0 {
            LIMIT_MAX
        } else {
            req.limit.min(LIMIT_MAX)
        };
        let rows = db::list_members(&self.pool, id, limit.into(), req.offset.max(0).into()).await?;
        let mut users = self
            .users(&caller, rows.iter().map(|m| m.user_id.clone()).collect())
            .await?;
        let members = rows
            .into_iter()
            .map(|row| {
                let user = users.remove(&row.user_id);
                let mut member = member_pb(row);
                member.user = user;
                member
            })
            .collect();
        Ok(pb::ListMembersResponse { members })
    }

    pub(crate) async fn member(
        &self,
        caller: Caller,
        req: pb::GetMemberRequest,
    ) -> Result<pb::GetMemberResponse> {
        let (id, access) = self.access(&req.channel_id, &caller).await?;
        // About yourself it answers "not joined" for a channel you can see; a private one you
        // are not in is "not found", as if missing, so the answer tells nothing about it.
        // About others, members only.
        if req.user_id != caller.user_id {
            authorize(&access, &caller, Action::ListMembers)?;
        } else if access.role.is_none() {
            if access.channel.is_private {
                return Err(Error::ChannelNotFound(req.channel_id));
            }
            return Ok(pb::GetMemberResponse { member: None });
        }
        let member = db::get_member(&self.pool, id, &req.user_id).await?;
        Ok(pb::GetMemberResponse {
            member: member.map(member_pb),
        })
    }

    pub(crate) async fn join(
        &self,
        caller: Caller,
        req: pb::JoinChannelRequest,
    ) -> Result<pb::JoinChannelResponse> {
        let (id, access) = self.access(&req.channel_id, &caller).await?;
        if access.role.is_some() {
            return Err(Error::AlreadyMember);
        }
        let mut tx = self.pool.begin().await?;
        if let Some(code) = req.invite_code.as_deref().filter(|c| !c.is_empty()) {
            // A wrong code says no more than a missing one: the channel stays invisible.
            if !db::redeem_invite(&mut *tx, code, id).await? {
                return Err(Error::ChannelNotFound(req.channel_id));
            }
        } else if access.channel.is_private {
            return Err(Error::ChannelNotFound(req.channel_id));
        }
        let member = insert_member(&mut tx, id, &caller.user_id).await?;
        tx.commit().await?;
        Ok(pb::JoinChannelResponse {
            member: Some(member_pb(member)),
        })
    }

    pub(crate) async fn add(
        &self,
        caller: Caller,
        req: pb::AddMemberRequest,
    ) -> Result<pb::AddMemberResponse> {
        let (id, access) = self.access(&req.channel_id, &caller).await?;
        authorize(&access, &caller, Action::Administer)?;
        if self
            .users(&caller, vec![req.user_id.clone()])
            .await?
            .is_empty()
        {
            return Err(Error::UserNotFound);
        }
        let mut tx = self.pool.begin().await?;
        let member = insert_member(&mut tx, id, &req.user_id).await?;
        tx.commit().await?;
        Ok(pb::AddMemberResponse {
            member: Some(member_pb(member)),
        })
    }

    pub(crate) async fn change_role(
        &self,
        caller: Caller,
        req: pb::UpdateMemberRoleRequest,
    ) -> Result<pb::UpdateMemberRoleResponse> {
        let role = match pb::Role::try_from(req.role).unwrap_or_default() {
            pb::Role::Member => Role::Member,
            pb::Role::Moderator => Role::Moderator,
            pb::Role::Admin => Role::Admin,
            pb::Role::Unspecified => {
                return Err(Invalid::field(
                    validate::VALIDATION_ERROR,
                    "role",
                    "role must be admin, moderator or member",
                )
                .into());
            }
        };
        let (id, access) = self.access(&req.channel_id, &caller).await?;
        authorize(&access, &caller, Action::Administer)?;
        let mut tx = self.pool.begin().await?;
        let admins = db::lock_admins(&mut tx, id).await?;
        if role != Role::Admin && admins == [req.user_id.as_str()] {
            return Err(Error::LastAdmin);
        }
        let member = db::update_role(&mut *tx, id, &req.user_id, role.as_str())
            .await?
            .ok_or(Error::MemberNotFound)?;
        let event = serde_json::json!({
            "type": "member.role_changed", "channelId": id, "userId": req.user_id, "role": role.as_str(),
        });
        outbox::enqueue(&mut tx, subjects::MEMBER_ROLE_CHANGED, event).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(pb::UpdateMemberRoleResponse {
            member: Some(member_pb(member)),
        })
    }

    pub(crate) async fn remove(
        &self,
        caller: Caller,
        req: pb::RemoveMemberRequest,
    ) -> Result<pb::RemoveMemberResponse> {
        let (id, access) = self.access(&req.channel_id, &caller).await?;
        authorize(
            &access,
            &caller,
            Action::RemoveMember {
                target_is_self: req.user_id == caller.user_id,
            },
        )?;
        let mut tx = self.pool.begin().await?;
        let admins = db::lock_admins(&mut tx, id).await?;
        if admins == [req.user_id.as_str()] {
            return Err(Error::LastAdmin);
        }
        if !db::delete_member(&mut *tx, id, &req.user_id).await? {
            return Err(Error::MemberNotFound);
        }
        let event =
            serde_json::json!({ "type": "member.removed", "channelId": id, "userId": req.user_id });
        outbox::enqueue(&mut tx, subjects::MEMBER_REMOVED, event).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(pb::RemoveMemberResponse {})
    }

    pub(crate) async fn invite(
        &self,
        caller: Caller,
        req: pb::CreateInviteRequest,
    ) -> Result<pb::CreateInviteResponse> {
        let (id, access) = self.access(&req.channel_id, &caller).await?;
        authorize(&access, &caller, Action::Administer)?;
        let secs = req.expires_in_seconds.unwrap_or(INVITE_DEFAULT_SECS);
        if !(1..=INVITE_MAX_SECS).contains(&secs) {
            let message = format!("expiresInSeconds must be between 1 and {INVITE_MAX_SECS}");
            return Err(
                Invalid::field(validate::VALIDATION_ERROR, "expiresInSeconds", message).into(),
            );
        }
        if req
            .max_uses
            .is_some_and(|n| !(1..=INVITE_MAX_USES).contains(&n))
        {
            let message = format!("maxUses must be between 1 and {INVITE_MAX_USES}");
            return Err(Invalid::field(validate::VALIDATION_ERROR, "maxUses", message).into());
        }
        // About 60 bits: unguessable within any rate limit, short enough to share.
        let code: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(10)
            .map(char::from)
            .collect();
        let expires_at = Utc::now() + Duration::seconds(secs);
        db::insert_invite(
            &self.pool,
            &code,
            id,
            &caller.user_id,
            expires_at,
            req.max_uses,
        )
        .await?;
        Ok(pb::CreateInviteResponse {
            code,
            expire_time: Some(timestamp(expires_at)),
            max_uses: req.max_uses,
        })
    }

    /// Names and avatars of `ids` from accounts (asked with the caller's token); unknown ids
    /// are absent from the map.
    async fn users(
        &self,
        caller: &Caller,
        ids: Vec<String>,
    ) -> Result<HashMap<String, pb::MemberUser>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let request = grpc::request(
            accounts::BatchGetUsersRequest { user_ids: ids },
            Some(&caller.token),
            None,
        );
        let users = self
            .accounts
            .clone()
            .batch_get_users(request)
            .await
            .map_err(|status| anyhow::anyhow!("accounts.BatchGetUsers: {status}"))?
            .into_inner()
            .users;
        Ok(users
            .into_iter()
            .map(|u| {
                let profile = u.profile.unwrap_or_default();
                let display_name = if profile.display_name.is_empty() {
                    u.name.clone()
                } else {
                    profile.display_name
                };
                let user = pb::MemberUser {
                    id: u.id.clone(),
                    name: u.name,
                    image: u.image,
                    display_name,
                    avatar_url: profile.avatar_url,
                };
                (u.id, user)
            })
            .collect())
    }
}

/// Inserts a `member`; a second insert of the same pair is a conflict, not a server error.
async fn insert_member(
    tx: &mut sqlx::PgConnection,
    channel_id: uuid::Uuid,
    user_id: &str,
) -> Result<MemberRow> {
    db::insert_member(&mut *tx, channel_id, user_id, Role::Member.as_str())
        .await
        .map_err(|e| {
            if hilo_kit::db::is_unique_violation(&e, "channel_members_pkey") {
                Error::AlreadyMember
            } else {
                e.into()
            }
        })
}

pub(crate) fn member_pb(row: MemberRow) -> pb::Member {
    pb::Member {
        channel_id: row.channel_id.to_string(),
        user_id: row.user_id,
        role: Role::parse(&row.role).map(role_pb).unwrap_or_default() as i32,
        join_time: Some(timestamp(row.joined_at)),
        user: None,
    }
}
