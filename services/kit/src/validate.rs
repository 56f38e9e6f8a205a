//! Field validation shared by the services: each check returns the value to store or an
//! [`Invalid`] naming the field, and [`Violations`] collects every failing field of a request
//! so a client learns all of them at once. Lengths count characters.

use tonic::Status;

/// Input that failed validation: a machine reason for the whole, and `(field path, message)`
/// for each failing field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Invalid {
    pub reason: &'static str,
    pub fields: Vec<(String, String)>,
}

impl Invalid {
    /// One failing field.
    pub fn field(reason: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self {
            reason,
            fields: vec![(field.to_owned(), message.into())],
        }
    }

    /// The message of a single failure, or a summary.
    pub fn message(&self) -> String {
        match self.fields.as_slice() {
            [(_, message)] => message.clone(),
            _ => "Validation error".to_owned(),
        }
    }
}

impl From<Invalid> for Status {
    fn from(invalid: Invalid) -> Self {
        crate::grpc::invalid(invalid.reason, &invalid.message(), &invalid.fields)
    }
}

/// The reason of plain field failures.
pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";

/// A non-blank text of at most `max` characters.
pub fn text(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    if raw.trim().is_empty() {
        return Err(Invalid::field(
            VALIDATION_ERROR,
            field,
            format!("{field} must not be empty"),
        ));
    }
    at_most(field, raw, max)
}

/// A text of at most `max` characters (may be empty).
pub fn at_most(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    if raw.chars().count() > max {
        return Err(Invalid::field(
            VALIDATION_ERROR,
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(raw.to_owned())
}

/// Longest URL accepted.
pub const URL_MAX: usize = 2048;

/// An absolute http(s) URL; other schemes (`javascript:`, `data:`) are refused, since clients
/// render these as links and images.
pub fn http_url(field: &str, raw: &str) -> Result<String, Invalid> {
    let ok = raw.len() <= URL_MAX
        && url::Url::parse(raw)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Invalid::field(
            VALIDATION_ERROR,
            field,
            format!("{field} must be an http(s) URL"),
        ))
    }
}

/// Collects the failures of a multi-field request.
#[derive(Debug, Default)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    /// The value of `result`, or `None` after recording its failures.
    pub fn check<T>(&mut self, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(invalid) => {
                self.0.extend(invalid.fields);
                None
            }
        }
    }

    /// Records a failure directly.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    /// Ok when nothing failed, else every failure at once.
    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(Invalid {
            reason: VALIDATION_ERROR,
            fields: self.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http_or_https() {
        assert!(http_url("u", "https://img.example/a.png").is_ok());
        assert!(http_url("u", "http://localhost:8080/x").is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "ftp://h/p",
            "/relative",
            "not a url",
        ] {
            assert!(http_url("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn texts_count_characters_and_refuse_blanks() {
        assert!(text("name", "   ", 10).is_err());
        assert!(text("name", &"é".repeat(10), 10).is_ok());
        assert!(text("name", &"é".repeat(11), 10).is_err());
    }

    #[test]
    fn violations_report_every_field() {
        let mut v = Violations::default();
        v.check(text("a", "", 5));
        v.check(http_url("b", "x"));
        let invalid = v.finish().unwrap_err();
        let fields: Vec<&str> = invalid.fields.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["a", "b"]);
    }
}
