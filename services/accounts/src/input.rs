//! Parsing of client input into values accounts can store, with Better Auth's error codes and
//! limits (API.md §5, BEHAVIOUR.md §2.2). Lengths count characters.

use crate::error::{Error, Result};

pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
pub const NAME_MAX: usize = 100;
pub const BIO_MAX: usize = 500;
pub const URL_MAX: usize = 2048;
pub const AGE_MAX: i32 = 150;

/// A syntactically valid email, lower-cased: something@domain.tld, no spaces, ≤ 254 bytes.
pub fn email(field: &'static str, raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(Error::field("INVALID_EMAIL", field, "Invalid email"))
    }
}

/// A password between 8 and 128 characters.
pub fn password(raw: &str) -> Result<()> {
    let len = raw.chars().count();
    if len < PASSWORD_MIN {
        return Err(Error::field(
            "PASSWORD_TOO_SHORT",
            "password",
            "Password too short",
        ));
    }
    if len > PASSWORD_MAX {
        return Err(Error::field(
            "PASSWORD_TOO_LONG",
            "password",
            "Password too long",
        ));
    }
    Ok(())
}

/// A non-blank text of at most `max` characters.
pub fn text(field: &'static str, raw: &str, max: usize) -> Result<String> {
    if raw.trim().is_empty() {
        return Err(Error::field(
            "VALIDATION_ERROR",
            field,
            format!("{field} must not be empty"),
        ));
    }
    if raw.chars().count() > max {
        return Err(Error::field(
            "VALIDATION_ERROR",
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(raw.to_owned())
}

/// An absolute http(s) URL; other schemes (`javascript:`, `data:`) are refused.
pub fn http_url(field: &'static str, raw: &str) -> Result<String> {
    let ok = raw.len() <= URL_MAX
        && url::Url::parse(raw)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Error::field(
            "VALIDATION_ERROR",
            field,
            format!("{field} must be an http(s) URL"),
        ))
    }
}

/// Collects every field error of a multi-field patch into one INVALID_ARGUMENT.
#[derive(Default)]
pub struct Violations(Vec<(&'static str, String)>);

impl Violations {
    /// Keeps the value of `result`, or records its field errors.
    pub fn check<T>(&mut self, result: Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(Error::Invalid { fields, .. }) => {
                self.0.extend(fields);
                None
            }
            Err(other) => {
                self.0.push(("", other.to_string()));
                None
            }
        }
    }

    /// Records a violation directly.
    pub fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    /// Ok when nothing failed, else one error listing every failing field.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(Error::Invalid {
            reason: "VALIDATION_ERROR",
            message: "Validation error".to_owned(),
            fields: self.0,
        })
    }
}
