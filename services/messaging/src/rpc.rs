//! The messaging gRPC service: the table of RPCs and the thread operations. Message
//! operations are in `messages.rs`, the event log in `events.rs`, permissions in `access.rs`.

use hilo_kit::grpc::reply;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hilo_kit::{
    auth::{Caller, TokenVerifier},
    validate::{self, Violations},
};
use hilo_proto::{
    Timestamp,
    channels::v1::Action,
    frames::{DeletedThreadJson, ThreadJson, kind},
    messaging::v1::{self as pb, messaging_service_server::MessagingService},
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    access::{Access, require},
    db::{self, ThreadPatch, ThreadRow},
    error::{Error, Result},
    events,
};

const NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 500;

/// State of the messaging service; cheap to clone.
#[derive(Clone)]
pub struct MessagingRpc {
    pub pool: PgPool,
    pub verifier: TokenVerifier,
    pub access: Arc<Access>,
    pub relay: crate::relay::Relay,
    /// Posts, stored in batches (group commit).
    pub posts: Arc<crate::posting::Posts>,
    /// Each thread's channel: it never changes, so posts look it up once.
    pub channels_of: moka::sync::Cache<Uuid, Uuid>,
}

/// The gRPC surface: every RPC authenticates its caller, then runs the operation.
#[tonic::async_trait]
impl MessagingService for MessagingRpc {
    async fn list_threads(
        &self,
        r: Request<pb::ListThreadsRequest>,
    ) -> Result<Response<pb::ListThreadsResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.threads(caller, r.into_inner()).await)
    }

    async fn get_thread(
        &self,
        r: Request<pb::GetThreadRequest>,
    ) -> Result<Response<pb::GetThreadResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        let thread = self
            .readable_thread(&caller, &r.into_inner().thread_id)
            .await;
        reply(thread.map(|t| pb::GetThreadResponse {
            thread: Some(thread_pb(t)),
        }))
    }

    async fn create_thread(
        &self,
        r: Request<pb::CreateThreadRequest>,
    ) -> Result<Response<pb::CreateThreadResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.create(caller, r.into_inner()).await)
    }

    async fn update_thread(
        &self,
        r: Request<pb::UpdateThreadRequest>,
    ) -> Result<Response<pb::UpdateThreadResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.update(caller, r.into_inner()).await)
    }

    async fn delete_thread(
        &self,
        r: Request<pb::DeleteThreadRequest>,
    ) -> Result<Response<pb::DeleteThreadResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.delete(caller, r.into_inner().thread_id).await)
    }

    async fn set_thread_archived(
        &self,
        r: Request<pb::SetThreadArchivedRequest>,
    ) -> Result<Response<pb::SetThreadArchivedResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.archive(caller, r.into_inner()).await)
    }

    async fn list_messages(
        &self,
        r: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.history(caller, r.into_inner()).await)
    }

    async fn get_message(
        &self,
        r: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.message(caller, r.into_inner().message_id).await)
    }

    async fn post_message(
        &self,
        r: Request<pb::PostMessageRequest>,
    ) -> Result<Response<pb::PostMessageResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.post(caller, r.into_inner()).await)
    }

    async fn edit_message(
        &self,
        r: Request<pb::EditMessageRequest>,
    ) -> Result<Response<pb::EditMessageResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.edit(caller, r.into_inner()).await)
    }

    async fn delete_message(
        &self,
        r: Request<pb::DeleteMessageRequest>,
    ) -> Result<Response<pb::DeleteMessageResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.remove(caller, r.into_inner().message_id).await)
    }

    async fn list_thread_events(
        &self,
        r: Request<pb::ListThreadEventsRequest>,
    ) -> Result<Response<pb::ListThreadEventsResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.replay(caller, r.into_inner()).await)
    }

    async fn authorize_thread(
        &self,
        r: Request<pb::AuthorizeThreadRequest>,
    ) -> Result<Response<pb::AuthorizeThreadResponse>, Status> {
        let caller = self.verifier.caller(&r)?;
        reply(self.authorize(caller, r.into_inner().thread_id).await)
    }
}

impl MessagingRpc {
    async fn threads(
        &self,
        caller: Caller,
        req: pb::ListThreadsRequest,
    ) -> Result<pb::ListThreadsResponse> {
        let channel_id = Uuid::parse_str(&req.channel_id)
            .map_err(|_| Error::ThreadNotFound(req.channel_id.clone()))?;
        let answer = self
            .access
            .check(&caller, &req.channel_id, Action::Read, None)
            .await?;
        require(
            answer,
            &req.channel_id,
            &not_member(&caller, &req.channel_id),
        )?;
        let rows = db::list_threads(&self.pool, channel_id, req.active_only).await?;
        Ok(pb::ListThreadsResponse {
            threads: rows.into_iter().map(thread_pb).collect(),
        })
    }

    async fn create(
        &self,
        caller: Caller,
        req: pb::CreateThreadRequest,
    ) -> Result<pb::CreateThreadResponse> {
        let mut v = Violations::default();
        let channel_id = Uuid::parse_str(&req.channel_id).ok();
        if channel_id.is_none() {
            v.push("channelId", "channelId must be a UUID");
        }
        let name = v.check(validate::text("name", &req.name, NAME_MAX));
        let description = req
            .description
            .and_then(|d| v.check(validate::at_most("description", &d, DESCRIPTION_MAX)));
        v.finish()?;
        let (Some(channel_id), Some(name)) = (channel_id, name) else {
            return Err(Error::Internal(anyhow::anyhow!("validated fields missing")));
        };
        let answer = self
            .access
            .check(&caller, &req.channel_id, Action::Post, None)
            .await?;
        require(
            answer,
            &req.channel_id,
            &not_member(&caller, &req.channel_id),
        )?;
        let thread = db::insert_thread(
            &self.pool,
            channel_id,
            &name,
            description.as_deref(),
            &caller.user_id,
        )
        .await?;
        Ok(pb::CreateThreadResponse {
            thread: Some(thread_pb(thread)),
        })
    }

    async fn update(
        &self,
        caller: Caller,
        req: pb::UpdateThreadRequest,
    ) -> Result<pb::UpdateThreadResponse> {
        let mut v = Violations::default();
        let patch = ThreadPatch {
            name: req
                .name
                .and_then(|n| v.check(validate::text("name", &n, NAME_MAX))),
            description: req.description.map(|d| {
                d.value
                    .and_then(|d| v.check(validate::at_most("description", &d, DESCRIPTION_MAX)))
            }),
            is_archived: req.is_archived,
        };
        v.finish()?;
        let thread = self
            .thread_for(
                &caller,
                &req.thread_id,
                Action::UpdateThread,
                MODERATOR_OR_CREATOR,
            )
            .await?;
        let thread = self.change_thread(thread.id, &patch).await?;
        Ok(pb::UpdateThreadResponse {
            thread: Some(thread),
        })
    }

    async fn archive(
        &self,
        caller: Caller,
        req: pb::SetThreadArchivedRequest,
    ) -> Result<pb::SetThreadArchivedResponse> {
        let thread = self
            .thread_for(
                &caller,
                &req.thread_id,
                Action::ArchiveThread,
                MODERATOR_OR_CREATOR,
            )
            .await?;
        let patch = ThreadPatch {
            is_archived: Some(req.archived),
            ..ThreadPatch::default()
        };
        let thread = self.change_thread(thread.id, &patch).await?;
        Ok(pb::SetThreadArchivedResponse {
            thread: Some(thread),
        })
    }

    /// Applies a patch and records THREAD_UPDATED with the thread as it now is.
    async fn change_thread(&self, id: Uuid, patch: &ThreadPatch) -> Result<pb::Thread> {
        let mut tx = self.pool.begin().await?;
        let seq = db::next_seq(&mut *tx, id, false).await?;
        let mut row = db::update_thread(&mut *tx, id, patch).await?;
        row.last_seq = seq;
        let thread = thread_pb(row);
        let event = events::store(
            &mut tx,
            id,
            seq,
            kind::THREAD_UPDATED,
            ThreadJson::from(thread.clone()),
            None,
        )
        .await?;
        tx.commit().await?;
        self.relay.committed([event]);
        Ok(thread)
    }

    async fn delete(&self, caller: Caller, thread_id: String) -> Result<pb::DeleteThreadResponse> {
        let thread = self
            .thread_for(&caller, &thread_id, Action::DeleteThread, ADMIN_OR_CREATOR)
            .await?;
        let mut tx = self.pool.begin().await?;
        let payload = DeletedThreadJson {
            thread_id: thread_id.clone(),
            id: thread_id.clone(),
        };
        let event = events::record(&mut tx, thread.id, kind::THREAD_DELETED, payload).await?;
        db::delete_thread(&mut tx, thread.id, event.seq).await?;
        tx.commit().await?;
        self.relay.committed([event]);
        Ok(pb::DeleteThreadResponse {})
    }

    async fn replay(
        &self,
        caller: Caller,
        req: pb::ListThreadEventsRequest,
    ) -> Result<pb::ListThreadEventsResponse> {
        let thread = self.readable_thread(&caller, &req.thread_id).await?;
        let limit = if req.limit <= 0 {
            500
        } else {
            req.limit.min(1000)
        };
        let rows =
            db::list_events(&self.pool, thread.id, req.after_seq.max(0), limit.into()).await?;
        let first_seq = db::first_seq(&self.pool, thread.id).await?;
        let events = rows
            .into_iter()
            .map(|e| pb::ThreadEvent {
                seq: e.seq,
                r#type: e.kind,
                frame: e.payload,
            })
            .collect();
        Ok(pb::ListThreadEventsResponse {
            events,
            last_seq: thread.last_seq,
            first_seq,
        })
    }

    async fn authorize(
        &self,
        caller: Caller,
        thread_id: String,
    ) -> Result<pb::AuthorizeThreadResponse> {
        let denied = pb::AuthorizeThreadResponse {
            allowed: false,
            visible: false,
            channel_id: String::new(),
            last_seq: 0,
        };
        let Some(thread) = self.find_thread(&thread_id).await? else {
            return Ok(denied);
        };
        let answer = self
            .access
            .check(&caller, &thread.channel_id.to_string(), Action::Read, None)
            .await?;
        // Someone who may not read the thread learns nothing about it but whether its
        // channel is one they can see (public).
        if !answer.allowed {
            return Ok(pb::AuthorizeThreadResponse {
                visible: answer.visible,
                ..denied
            });
        }
        Ok(pb::AuthorizeThreadResponse {
            allowed: true,
            visible: true,
            channel_id: thread.channel_id.to_string(),
            last_seq: thread.last_seq,
        })
    }

    /// A thread's id and its channel's, from memory when it was seen before.
    pub(crate) async fn thread_channel(&self, thread_id: &str) -> Result<(Uuid, Uuid)> {
        let missing = || Error::ThreadNotFound(thread_id.to_owned());
        let id = Uuid::parse_str(thread_id).map_err(|_| missing())?;
        if let Some(channel) = self.channels_of.get(&id) {
            return Ok((id, channel));
        }
        let thread = db::get_thread(&self.pool, id).await?.ok_or_else(missing)?;
        self.channels_of.insert(id, thread.channel_id);
        Ok((id, thread.channel_id))
    }

    /// The thread, or `None` for a malformed or unknown id.
    pub(crate) async fn find_thread(&self, thread_id: &str) -> Result<Option<ThreadRow>> {
        let Ok(id) = Uuid::parse_str(thread_id) else {
            return Ok(None);
        };
        Ok(db::get_thread(&self.pool, id).await?)
    }

    /// The thread, if the caller may read it (a member of its channel).
    pub(crate) async fn readable_thread(
        &self,
        caller: &Caller,
        thread_id: &str,
    ) -> Result<ThreadRow> {
        let thread = self
            .find_thread(thread_id)
            .await?
            .ok_or_else(|| Error::ThreadNotFound(thread_id.to_owned()))?;
        let channel_id = thread.channel_id.to_string();
        let answer = self
            .access
            .check(caller, &channel_id, Action::Read, None)
            .await?;
        require(answer, thread_id, &not_member(caller, &channel_id))?;
        Ok(thread)
    }

    /// The thread, if the caller may do `action` on it (as its creator or by rank).
    async fn thread_for(
        &self,
        caller: &Caller,
        thread_id: &str,
        action: Action,
        refusal: &str,
    ) -> Result<ThreadRow> {
        let thread = self
            .find_thread(thread_id)
            .await?
            .ok_or_else(|| Error::ThreadNotFound(thread_id.to_owned()))?;
        let answer = self
            .access
            .check(
                caller,
                &thread.channel_id.to_string(),
                action,
                Some(&thread.created_by),
            )
            .await?;
        require(answer, thread_id, refusal)?;
        Ok(thread)
    }
}

const MODERATOR_OR_CREATOR: &str = "Insufficient permissions: 'moderator' role required to access this resource as owner or moderator";
const ADMIN_OR_CREATOR: &str =
    "Insufficient permissions: 'admin' role required to access this resource as owner or admin";

pub(crate) fn not_member(caller: &Caller, channel_id: &str) -> String {
    format!(
        "User '{}' is not authorized to access channel '{channel_id}'",
        caller.user_id
    )
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub(crate) fn thread_pb(row: ThreadRow) -> pb::Thread {
    pb::Thread {
        id: row.id.to_string(),
        channel_id: row.channel_id.to_string(),
        name: row.name,
        description: row.description,
        created_by: row.created_by,
        is_archived: row.is_archived,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        last_seq: row.last_seq,
    }
}
