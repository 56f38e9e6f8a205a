//! Parsing of account input with Better Auth's error codes and limits (docs/api.md
//! §1.3, §5); generic text and URL checks are `hilo_kit::validate`'s.

use hilo_kit::validate::Invalid;

pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
pub const NAME_MAX: usize = 100;
pub const BIO_MAX: usize = 500;
pub const AGE_MAX: i32 = 150;

/// A syntactically valid email, lower-cased: something@domain.tld, no spaces, at most 254 bytes.
pub fn email(field: &str, raw: &str) -> Result<String, Invalid> {
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
        Err(Invalid::field("INVALID_EMAIL", field, "Invalid email"))
    }
}

/// The 10,000 most common passwords, lower-cased, most common first: the head of the list
/// zxcvbn ships (MIT), drawn from public password dumps (docs/security.md).
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// True when `raw` is one of [`COMMON_PASSWORDS`], whatever its letter case: the first
/// guesses of any attacker, so refused as Better Auth refuses a breached password.
fn is_common(raw: &str) -> bool {
    static COMMON: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| COMMON_PASSWORDS.lines().collect());
    COMMON.contains(raw.to_lowercase().as_str())
}

/// A password between 8 and 128 characters, not one of the most common.
pub fn password(raw: &str) -> Result<(), Invalid> {
    let len = raw.chars().count();
    if len < PASSWORD_MIN {
        return Err(Invalid::field(
            "PASSWORD_TOO_SHORT",
            "password",
            "Password too short",
        ));
    }
    if len > PASSWORD_MAX {
        return Err(Invalid::field(
            "PASSWORD_TOO_LONG",
            "password",
            "Password too long",
        ));
    }
    if is_common(raw) {
        return Err(Invalid::field(
            "PASSWORD_COMPROMISED",
            "password",
            "The password you entered has been compromised. Please choose a different password.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_a_dotted_domain_and_are_lower_cased() {
        assert_eq!(email("e", " Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "a@b", "@b.co", "a b@c.co", "a@@b.co", "a@.co", "a@b..co", "plain",
        ] {
            assert!(email("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_8_to_128_characters() {
        assert_eq!(password("short").unwrap_err().reason, "PASSWORD_TOO_SHORT");
        assert!(password("eight ch").is_ok());
        for common in ["password", "12345678", "PassWord1", "iloveyou", "baseball"] {
            assert_eq!(
                password(common).unwrap_err().reason,
                "PASSWORD_COMPROMISED",
                "{common}"
            );
        }
        assert_eq!(COMMON_PASSWORDS.lines().count(), 10_000);
        assert!(password(&"é".repeat(128)).is_ok());
        assert_eq!(
            password(&"x".repeat(129)).unwrap_err().reason,
            "PASSWORD_TOO_LONG"
        );
    }
}
