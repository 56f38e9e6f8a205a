//! Message operations: history, posting (idempotent), editing and deleting. Each change is
//! stored with its event in one transaction.

use std::collections::HashMap;

use chrono::DurationRound as _;
use hilo_kit::{
    auth::Caller,
    validate::{self, Violations},
};
use hilo_proto::{
    channels::v1::Action,
    frames::{DeletedMessageJson, MessageJson, kind},
    messaging::v1 as pb,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    access::require,
    attachments,
    db::{self, MessageRow},
    error::{Error, Result},
    events,
    posting::{Post, Refused},
    rpc::{MessagingRpc, not_member, timestamp},
};

pub const CONTENT_MAX: usize = 4000;
const LIMIT_DEFAULT: i32 = 50;
const LIMIT_MAX: i32 = 100;
const KEY_MAX: usize = 255;

impl MessagingRpc {
    pub(crate) async fn history(
        &self,
        caller: Caller,
        req: pb::ListMessagesRequest,
    ) -> Result<pb::ListMessagesResponse> {
        let thread = self.readable_thread(&caller, &req.thread_id).await?;
        let limit = if req.limit <= 0 {
            LIMIT_DEFAULT
        } else {
            req.limit.min(LIMIT_MAX)
        };
        let rows = db::list_messages(
            &self.pool,
            thread.id,
            limit.into(),
            req.offset.max(0).into(),
            req.before_seq,
            req.after_seq,
        )
        .await?;
        let messages = self.with_senders(&caller, rows).await?;
        Ok(pb::ListMessagesResponse { messages })
    }

    pub(crate) async fn message(
        &self,
        caller: Caller,
        message_id: String,
    ) -> Result<pb::GetMessageResponse> {
        let row = self.find_message(&message_id).await?;
        self.readable_thread(&caller, &row.thread_id.to_string())
            .await
            .map_err(|e| hide_message(e, &message_id))?;
        let message = self.with_senders(&caller, vec![row]).await?.pop();
        Ok(pb::GetMessageResponse { message })
    }

    pub(crate) async fn post(
        &self,
        caller: Caller,
        req: pb::PostMessageRequest,
    ) -> Result<pb::PostMessageResponse> {
        let mut v = Violations::default();
        let content = v
            .check(validate::at_most("content", &req.content, CONTENT_MAX))
            .unwrap_or_default();
        let attachments = attachments::parse(req.attachments, &mut v);
        if content.is_empty() && attachments.is_empty() {
            v.push(
                "content",
                "A message needs content or at least one attachment",
            );
        }
        let key = req.idempotency_key.filter(|k| !k.is_empty());
        if let Some(key) = &key {
            v.check(validate::text("idempotencyKey", key, KEY_MAX));
        }
        v.finish()?;
        // What the key stands for: a retry must carry the same request.
        let hash = key.as_ref().map(|_| {
            let attachments_json = serde_json::to_string(&attachments).unwrap_or_default();
            hex::encode(Sha256::digest(format!(
                "{}\n{content}\n{attachments_json}",
                req.thread_id
            )))
        });
        let (thread_id, channel_id) = self.thread_channel(&req.thread_id).await?;
        let channel_id = channel_id.to_string();
        let answer = self
            .access
            .check(&caller, &channel_id, Action::Post, None)
            .await?;
        require(answer, &req.thread_id, &not_member(&caller, &channel_id))?;
        let sender = self
            .access
            .senders(&caller, vec![caller.user_id.clone()])
            .await?
            .remove(&caller.user_id);
        // Stored with microseconds, shown with milliseconds: the same instant everywhere.
        let created_at = chrono::Utc::now()
            .duration_trunc(chrono::TimeDelta::microseconds(1))
            .unwrap_or_else(|_| chrono::Utc::now());
        let mut message = pb::Message {
            id: Uuid::now_v7().to_string(),
            thread_id: thread_id.to_string(),
            sender_id: caller.user_id.clone(),
            content: content.clone(),
            attachments: attachments.iter().cloned().map(Into::into).collect(),
            seq: -1,
            create_time: Some(timestamp(created_at)),
            edit_time: None,
            sender,
        };
        let frame = events::frame(
            thread_id,
            -1,
            kind::NEW_MESSAGE,
            MessageJson::from(message.clone()),
        )?;
        let post = Post {
            thread_id,
            id: Uuid::parse_str(&message.id).map_err(anyhow::Error::from)?,
            sender_id: caller.user_id.clone(),
            content,
            attachments,
            created_at,
            idempotency_key: key.clone(),
            request_hash: hash.clone(),
            frame,
            traceparent: hilo_kit::telemetry::traceparent(),
        };
        match self.posts.submit(post).await {
            Ok(seq) => {
                message.seq = seq;
                Ok(pb::PostMessageResponse {
                    message: Some(message),
                    replayed: false,
                })
            }
            // A retry: the first post with this key stands.
            Err(Refused::KeyTaken) => {
                let first = db::find_by_key(
                    &self.pool,
                    &caller.user_id,
                    key.as_deref().unwrap_or_default(),
                )
                .await?
                .ok_or_else(|| Error::Internal(anyhow::anyhow!("idempotent message vanished")))?;
                self.replayed(&caller, first, hash.as_deref()).await
            }
            Err(Refused::Archived) => Err(Error::Archived),
            Err(Refused::NoThread) => {
                self.channels_of.invalidate(&thread_id);
                Err(Error::ThreadNotFound(req.thread_id))
            }
            Err(Refused::Unavailable) => Err(Error::Unavailable),
            Err(Refused::Failed(why)) => Err(Error::Internal(anyhow::anyhow!(why))),
        }
    }

    /// The first result of an idempotency key, if this request is the same as the first.
    async fn replayed(
        &self,
        caller: &Caller,
        first: MessageRow,
        hash: Option<&str>,
    ) -> Result<pb::PostMessageResponse> {
        if first.request_hash.as_deref() != hash {
            return Err(Error::KeyReused);
        }
        let message = self.with_senders(caller, vec![first]).await?.pop();
        Ok(pb::PostMessageResponse {
            message,
            replayed: true,
        })
    }

    pub(crate) async fn edit(
        &self,
        caller: Caller,
        req: pb::EditMessageRequest,
    ) -> Result<pb::EditMessageResponse> {
        let content = validate::text("content", &req.content, CONTENT_MAX)?;
        let row = self.find_message(&req.message_id).await?;
        let thread = self
            .find_thread(&row.thread_id.to_string())
            .await?
            .ok_or_else(|| Error::MessageNotFound(req.message_id.clone()))?;
        let answer = self
            .access
            .check(
                &caller,
                &thread.channel_id.to_string(),
                Action::EditMessage,
                Some(&row.sender_id),
            )
            .await?;
        require(
            answer,
            &req.message_id,
            "Only the author can edit a message",
        )
        .map_err(|e| hide_message(e, &req.message_id))?;
        let sender = self
            .access
            .senders(&caller, vec![row.sender_id.clone()])
            .await?
            .remove(&row.sender_id);

        let mut tx = self.pool.begin().await?;
        let seq = db::next_seq(&mut *tx, thread.id, false).await?;
        if db::get_thread(&mut *tx, thread.id)
            .await?
            .is_none_or(|t| t.is_archived)
        {
            return Err(Error::Archived);
        }
        let edited = db::edit_message(&mut *tx, row.id, &content).await?;
        let message = message_pb(edited, sender);
        let event = events::store(
            &mut tx,
            thread.id,
            seq,
            kind::MESSAGE_UPDATED,
            MessageJson::from(message.clone()),
            Some(row.id),
        )
        .await?;
        db::redact_message_events(&mut *tx, row.id, seq).await?;
        tx.commit().await?;
        self.relay.committed([event]);
        Ok(pb::EditMessageResponse {
            message: Some(message),
        })
    }

    pub(crate) async fn remove(
        &self,
        caller: Caller,
        message_id: String,
    ) -> Result<pb::DeleteMessageResponse> {
        let row = self.find_message(&message_id).await?;
        let thread = self
            .find_thread(&row.thread_id.to_string())
            .await?
            .ok_or_else(|| Error::MessageNotFound(message_id.clone()))?;
        let answer = self
            .access
            .check(
                &caller,
                &thread.channel_id.to_string(),
                Action::DeleteMessage,
                Some(&row.sender_id),
            )
            .await?;
        let refusal = "Insufficient permissions: 'moderator' role required to access this resource as owner or moderator";
        require(answer, &message_id, refusal).map_err(|e| hide_message(e, &message_id))?;

        let mut tx = self.pool.begin().await?;
        db::delete_message(&mut *tx, row.id).await?;
        db::redact_message_events(&mut *tx, row.id, i64::MAX).await?;
        let payload = DeletedMessageJson {
            message_id: message_id.clone(),
            id: message_id,
            thread_id: thread.id.to_string(),
        };
        let event = events::record(&mut tx, thread.id, kind::DELETE_MESSAGE, payload).await?;
        tx.commit().await?;
        self.relay.committed([event]);
        Ok(pb::DeleteMessageResponse {})
    }

    async fn find_message(&self, message_id: &str) -> Result<MessageRow> {
        let id = Uuid::parse_str(message_id)
            .map_err(|_| Error::MessageNotFound(message_id.to_owned()))?;
        db::get_message(&self.pool, id)
            .await?
            .ok_or_else(|| Error::MessageNotFound(message_id.to_owned()))
    }

    /// Rows with their senders, looked up in one call.
    async fn with_senders(
        &self,
        caller: &Caller,
        rows: Vec<MessageRow>,
    ) -> Result<Vec<pb::Message>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let senders: HashMap<String, pb::Sender> = self
            .access
            .senders(caller, rows.iter().map(|r| r.sender_id.clone()).collect())
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let sender = senders.get(&row.sender_id).cloned();
                message_pb(row, sender)
            })
            .collect())
    }
}

/// A message in an invisible thread is an unknown message.
fn hide_message(error: Error, message_id: &str) -> Error {
    match error {
        Error::ThreadNotFound(_) => Error::MessageNotFound(message_id.to_owned()),
        other => other,
    }
}

fn message_pb(row: MessageRow, sender: Option<pb::Sender>) -> pb::Message {
    pb::Message {
        id: row.id.to_string(),
        thread_id: row.thread_id.to_string(),
        sender_id: row.sender_id,
        content: row.content,
        attachments: row.attachments.0.into_iter().map(Into::into).collect(),
        seq: row.seq,
        create_time: Some(timestamp(row.created_at)),
        edit_time: row.edited_at.map(timestamp),
        sender,
    }
}
