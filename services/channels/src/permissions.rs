//! Who may do what in a channel: the whole rule book, as pure functions of the caller's role
//! (none when not a member), the channel's privacy and, for some actions, whether the caller
//! created the thing acted on. Being its creator counts only while still a member.

/// A member's rank in a channel (admin > moderator > member).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Member,
    Moderator,
    Admin,
}

impl Role {
    /// The database enum's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "member" => Some(Role::Member),
            "moderator" => Some(Role::Moderator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Something a user may try to do in a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// See the channel itself (name, description, ...).
    See,
    /// Read its threads and messages.
    Read,
    /// List members and read their roles.
    ListMembers,
    /// Create threads and post messages.
    Post,
    /// Rename or describe the channel; delete it; invite; add members; change roles.
    Administer,
    /// Remove a member: themselves (leave) or, for admins, anyone.
    RemoveMember { target_is_self: bool },
    /// Update a thread (creator or moderator+).
    UpdateThread { is_creator: bool },
    /// Delete a thread (creator or admin).
    DeleteThread { is_creator: bool },
    /// Archive or unarchive a thread (creator, moderator or admin).
    ArchiveThread { is_creator: bool },
    /// Delete a message (author or moderator+).
    DeleteMessage { is_author: bool },
    /// Edit a message (its author only).
    EditMessage { is_author: bool },
}

/// The answer to "may this user do this here?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The channel exists for this user, but the action is not theirs (403).
    Deny,
    /// The channel is invisible to this user (private and not a member): 404, not 403.
    Hidden,
}

/// The rule book. `role` is the caller's role in the channel, `None` for non-members.
pub fn decide(role: Option<Role>, is_private: bool, action: Action) -> Decision {
    let Some(role) = role else {
        return match (is_private, action) {
            (true, _) => Decision::Hidden,
            (false, Action::See) => Decision::Allow,
            (false, _) => Decision::Deny,
        };
    };
    let allowed = match action {
        Action::See | Action::Read | Action::ListMembers | Action::Post => true,
        Action::Administer => role == Role::Admin,
        Action::RemoveMember { target_is_self } => target_is_self || role == Role::Admin,
        Action::UpdateThread { is_creator } | Action::ArchiveThread { is_creator } => {
            is_creator || role >= Role::Moderator
        }
        Action::DeleteThread { is_creator } => is_creator || role == Role::Admin,
        Action::DeleteMessage { is_author } => is_author || role >= Role::Moderator,
        Action::EditMessage { is_author } => is_author,
    };
    if allowed {
        Decision::Allow
    } else {
        Decision::Deny
    }
}

#[cfg(test)]
mod tests {
    use super::{Action::*, Decision::*, Role::*, *};

    const ROLES: [Option<Role>; 4] = [None, Some(Member), Some(Moderator), Some(Admin)];

    /// Expected decision for each caller in ROLES order: non-member, member, moderator, admin.
    fn check(action: Action, public: [Decision; 4], private: [Decision; 4]) {
        for (i, role) in ROLES.iter().enumerate() {
            assert_eq!(
                decide(*role, false, action),
                public[i],
                "{action:?} by {role:?} in a public channel"
            );
            assert_eq!(
                decide(*role, true, action),
                private[i],
                "{action:?} by {role:?} in a private channel"
            );
        }
    }

    #[test]
    fn seeing_is_open_in_public_channels_and_hidden_in_private_ones() {
        check(
            See,
            [Allow, Allow, Allow, Allow],
            [Hidden, Allow, Allow, Allow],
        );
    }

    #[test]
    fn only_members_read_list_members_and_post() {
        for action in [Read, ListMembers, Post] {
            check(
                action,
                [Deny, Allow, Allow, Allow],
                [Hidden, Allow, Allow, Allow],
            );
        }
    }

    #[test]
    fn only_admins_administer() {
        check(
            Administer,
            [Deny, Deny, Deny, Allow],
            [Hidden, Deny, Deny, Allow],
        );
    }

    #[test]
    fn members_remove_themselves_and_admins_remove_anyone() {
        check(
            RemoveMember {
                target_is_self: true,
            },
            [Deny, Allow, Allow, Allow],
            [Hidden, Allow, Allow, Allow],
        );
        check(
            RemoveMember {
                target_is_self: false,
            },
            [Deny, Deny, Deny, Allow],
            [Hidden, Deny, Deny, Allow],
        );
    }

    #[test]
    fn thread_rules_follow_creator_and_rank() {
        for action in [
            UpdateThread { is_creator: true },
            ArchiveThread { is_creator: true },
            DeleteThread { is_creator: true },
        ] {
            check(
                action,
                [Deny, Allow, Allow, Allow],
                [Hidden, Allow, Allow, Allow],
            );
        }
        for action in [
            UpdateThread { is_creator: false },
            ArchiveThread { is_creator: false },
        ] {
            check(
                action,
                [Deny, Deny, Allow, Allow],
                [Hidden, Deny, Allow, Allow],
            );
        }
        check(
            DeleteThread { is_creator: false },
            [Deny, Deny, Deny, Allow],
            [Hidden, Deny, Deny, Allow],
        );
    }

    #[test]
    fn message_rules_follow_author_and_rank() {
        check(
            DeleteMessage { is_author: true },
            [Deny, Allow, Allow, Allow],
            [Hidden, Allow, Allow, Allow],
        );
        check(
            DeleteMessage { is_author: false },
            [Deny, Deny, Allow, Allow],
            [Hidden, Deny, Allow, Allow],
        );
        check(
            EditMessage { is_author: true },
            [Deny, Allow, Allow, Allow],
            [Hidden, Allow, Allow, Allow],
        );
        check(
            EditMessage { is_author: false },
            [Deny, Deny, Deny, Deny],
            [Hidden, Deny, Deny, Deny],
        );
    }

    #[test]
    fn a_creator_who_left_has_no_creator_rights() {
        // Not a member any more: the creator flag does not matter.
        assert_eq!(decide(None, false, DeleteThread { is_creator: true }), Deny);
        assert_eq!(decide(None, false, EditMessage { is_author: true }), Deny);
    }

    #[test]
    fn roles_rank_and_round_trip() {
        assert!(Admin > Moderator && Moderator > Member);
        for role in [Member, Moderator, Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("owner"), None);
    }
}
