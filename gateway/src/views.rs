//! The JSON shapes clients receive for users and sessions (docs/api.md §1), made
//! from the accounts protos in one place for the auth and users routes.

/// The API's one time format, shared with the thread and message frames.
pub use hilo_proto::frames::iso;
use hilo_proto::{accounts::v1 as pb, channels::v1 as channels};
use serde::Serialize;
use utoipa::ToSchema;

/// A user with their profile (`/api/users`). `email` is present only on the caller's own user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserWithProfile {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub email_verified: bool,
    pub image: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub profile: Option<ProfileView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileView {
    pub id: String,
    pub user_id: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub banner_url: Option<String>,
    pub bio: Option<String>,
    pub age: Option<i32>,
    pub is_online: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<pb::User> for UserWithProfile {
    fn from(u: pb::User) -> Self {
        Self {
            id: u.id,
            name: u.name,
            email: u.email,
            email_verified: u.email_verified,
            image: u.image,
            created_at: iso(u.create_time),
            updated_at: iso(u.update_time),
            profile: u.profile.map(|p| ProfileView {
                id: p.id,
                user_id: p.user_id,
                display_name: p.display_name,
                avatar_url: p.avatar_url,
                banner_url: p.banner_url,
                bio: p.bio,
                age: p.age,
                is_online: p.is_online,
                created_at: iso(p.create_time),
                updated_at: iso(p.update_time),
            }),
        }
    }
}

/// Better Auth's user object (`/api/auth/*`), including its `role` field.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthUser {
    pub id: String,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub image: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub role: String,
}

impl From<pb::User> for AuthUser {
    fn from(u: pb::User) -> Self {
        Self {
            id: u.id,
            name: u.name,
            email: u.email.unwrap_or_default(),
            email_verified: u.email_verified,
            image: u.image,
            created_at: iso(u.create_time),
            updated_at: iso(u.update_time),
            role: u.role,
        }
    }
}

/// Better Auth's session object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: String,
    pub token: String,
    pub user_id: String,
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl SessionView {
    /// The session as Better Auth shows it, with the token the client presented.
    pub fn new(s: pb::Session, token: &str) -> Self {
        Self {
            id: s.id,
            token: token.to_owned(),
            user_id: s.user_id,
            expires_at: iso(s.expire_time),
            created_at: iso(s.create_time),
            updated_at: iso(s.update_time),
            ip_address: s.ip_address,
            user_agent: s.user_agent,
        }
    }
}

/// A channel, as the original answered it (docs/api.md §1).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_private: bool,
    pub image_url: Option<String>,
    pub banner_url: Option<String>,
    pub category: String,
    pub owner_id: String,
    pub created_at: String,
}

impl From<channels::Channel> for ChannelView {
    fn from(c: channels::Channel) -> Self {
        Self {
            id: c.id,
            name: c.name,
            description: c.description,
            is_private: c.is_private,
            image_url: c.image_url,
            banner_url: c.banner_url,
            category: c.category,
            owner_id: c.owner_id,
            created_at: iso(c.create_time),
        }
    }
}

/// How a person is shown next to what they did: the same shape as a message's `sender`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonView {
    pub id: String,
    pub name: String,
    pub image: Option<String>,
    pub profile: PersonProfile,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonProfile {
    pub display_name: String,
    pub avatar_url: Option<String>,
}

/// A channel member; `user` is present in member listings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub channel_id: String,
    pub user_id: String,
    /// `admin`, `moderator` or `member`.
    pub role: &'static str,
    pub joined_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<PersonView>,
}

/// The API's name of a role.
pub fn role_name(role: i32) -> &'static str {
    match channels::Role::try_from(role).unwrap_or_default() {
        channels::Role::Admin => "admin",
        channels::Role::Moderator => "moderator",
        channels::Role::Member | channels::Role::Unspecified => "member",
    }
}

impl From<channels::Member> for MemberView {
    fn from(m: channels::Member) -> Self {
        Self {
            channel_id: m.channel_id,
            user_id: m.user_id,
            role: role_name(m.role),
            joined_at: iso(m.join_time),
            user: m.user.map(|u| PersonView {
                id: u.id,
                name: u.name,
                image: u.image,
                profile: PersonProfile {
                    display_name: u.display_name,
                    avatar_url: u.avatar_url,
                },
            }),
        }
    }
}
