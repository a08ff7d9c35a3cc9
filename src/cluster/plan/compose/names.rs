//! Stack and service names with Rancher's rules and its validation error
//! codes (reference §1.1), shared by compose parsing and the API.

use std::fmt;

/// Rancher API validation codes (`ValidationErrorCodes.java`) used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Characters outside the allowed set.
    InvalidCharacters,
    /// A value not in the allowed syntax (ports, sizes, types).
    InvalidFormat,
    /// A value or combination that is not allowed.
    InvalidOption,
    /// A reference to something that does not exist.
    InvalidReference,
    /// Longer than allowed.
    MaxLengthExceeded,
    /// Below the minimum.
    MinLimitExceeded,
    /// Above the maximum.
    MaxLimitExceeded,
    /// A required value is missing.
    MissingRequired,
    /// The name is already taken.
    NotUnique,
}

impl ErrorCode {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidCharacters => "InvalidCharacters",
            ErrorCode::InvalidFormat => "InvalidFormat",
            ErrorCode::InvalidOption => "InvalidOption",
            ErrorCode::InvalidReference => "InvalidReference",
            ErrorCode::MaxLengthExceeded => "MaxLengthExceeded",
            ErrorCode::MinLimitExceeded => "MinLimitExceeded",
            ErrorCode::MaxLimitExceeded => "MaxLimitExceeded",
            ErrorCode::MissingRequired => "MissingRequired",
            ErrorCode::NotUnique => "NotUnique",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest stack or service name: one DNS label.
pub const MAX_NAME_LEN: usize = 63;

/// A rejected name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {why}")]
pub struct NameError {
    /// `stack` or `service`.
    pub kind: &'static str,
    /// The name.
    pub name: String,
    /// The rule it breaks.
    pub why: &'static str,
    /// The API code.
    pub code: ErrorCode,
}

/// Check a stack or service name: it becomes a DNS label (`web.app`) and a
/// container name part, so letters, digits and single inner hyphens only.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    let err = |why, code| {
        Err(NameError {
            kind,
            name: name.to_string(),
            why,
            code,
        })
    };
    if name.is_empty() {
        return err("a name is required", ErrorCode::MissingRequired);
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return err(
            "only letters, digits and '-' are allowed",
            ErrorCode::InvalidCharacters,
        );
    }
    if name.starts_with('-') || name.ends_with('-') {
        return err(
            "must not start or end with '-'",
            ErrorCode::InvalidCharacters,
        );
    }
    if name.contains("--") {
        return err("must not contain '--'", ErrorCode::InvalidCharacters);
    }
    if name.len() > MAX_NAME_LEN {
        return err("longer than 63 characters", ErrorCode::MaxLengthExceeded);
    }
    Ok(())
}

/// Check that `name` is not among `existing` (compared without case, as DNS does).
pub fn validate_unique<'a>(
    kind: &'static str,
    name: &str,
    existing: impl IntoIterator<Item = &'a str>,
) -> Result<(), NameError> {
    if existing.into_iter().any(|e| e.eq_ignore_ascii_case(name)) {
        return Err(NameError {
            kind,
            name: name.to_string(),
            why: "already in use",
            code: ErrorCode::NotUnique,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules_table() {
        let long = "a".repeat(64);
        let rows: &[(&str, Option<ErrorCode>)] = &[
            ("web", None),
            ("web-1", None),
            ("Web2", None),
            ("a", None),
            (&long[..63], None),
            ("", Some(ErrorCode::MissingRequired)),
            ("web_1", Some(ErrorCode::InvalidCharacters)),
            ("web.1", Some(ErrorCode::InvalidCharacters)),
            ("wéb", Some(ErrorCode::InvalidCharacters)),
            ("web 1", Some(ErrorCode::InvalidCharacters)),
            ("-web", Some(ErrorCode::InvalidCharacters)),
            ("web-", Some(ErrorCode::InvalidCharacters)),
            ("we--b", Some(ErrorCode::InvalidCharacters)),
            (&long, Some(ErrorCode::MaxLengthExceeded)),
        ];
        for (name, want) in rows {
            let got = validate_name("service", name).err().map(|e| e.code);
            assert_eq!(got, *want, "{name:?}");
        }
        let e = validate_name("stack", "a_b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid stack name \"a_b\": only letters, digits and '-' are allowed"
        );
    }

    #[test]
    fn uniqueness_ignores_case() {
        assert!(validate_unique("service", "web", ["db", "cache"]).is_ok());
        let e = validate_unique("service", "Web", ["db", "web"]).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotUnique);
        assert_eq!(
            e.to_string(),
            "invalid service name \"Web\": already in use"
        );
    }
}
