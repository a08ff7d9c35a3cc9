//! `${VAR}` substitution in compose text, as docker-compose and
//! rancher-compose do on the client before a stack is sent: `$VAR`,
//! `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
//! `$$` for a literal `$`. The scheduler macros `${stack_name}`,
//! `${service_name}` and `${project_name}` are left for the server.

/// Names the server expands itself (scheduler label macros).
pub const MACROS: &[&str] = &["stack_name", "service_name", "project_name"];

/// A malformed `${…}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: invalid interpolation {text:?} (expected $NAME, ${{NAME}} or ${{NAME:-default}}; write $$ for a literal $)")]
pub struct InterpolateError {
    /// 1-based line.
    pub line: usize,
    /// The offending text.
    pub text: String,
}

/// The result: new text, and the variables that were unset (substituted
/// with "" — callers warn, as docker-compose does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpolated {
    /// The text with variables substituted.
    pub text: String,
    /// Unset variables, in order of first use.
    pub unset: Vec<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Substitute variables in `text` using `lookup`.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolateError> {
    let mut out = String::with_capacity(text.len());
    let mut unset: Vec<String> = Vec::new();
    let mut line = 1;
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        let before = &rest[..pos];
        line += before.matches('\n').count();
        out.push_str(before);
        let after = &rest[pos + 1..];
        let bad = |t: &str| InterpolateError {
            line,
            text: t.chars().take(40).collect(),
        };
        let mut resolve = |name: &str, default: Option<(&str, bool)>| -> String {
            let value = lookup(name);
            match (value, default) {
                (Some(v), Some((d, true))) if v.is_empty() => d.to_string(),
                (Some(v), _) => v,
                (None, Some((d, _))) => d.to_string(),
                (None, None) => {
                    if !unset.iter().any(|u| u == name) {
                        unset.push(name.to_string());
                    }
                    String::new()
                }
            }
        };
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| bad(&rest[pos..]))?;
            let inner = &body[..end];
            let (name, default) = match inner.find([':', '-']) {
                Some(i) if inner[i..].starts_with(":-") => {
                    (&inner[..i], Some((&inner[i + 2..], true)))
                }
                Some(i) if inner[i..].starts_with('-') => {
                    (&inner[..i], Some((&inner[i + 1..], false)))
                }
                Some(_) => return Err(bad(&rest[pos..pos + end + 3])),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(is_name_char) {
                return Err(bad(&rest[pos..pos + end + 3]));
            }
            if MACROS.contains(&name) && default.is_none() {
                out.push_str(&rest[pos..pos + end + 3]);
            } else {
                out.push_str(&resolve(name, default));
            }
            rest = &body[end + 1..];
        } else {
            let len = after
                .find(|c: char| !is_name_char(c))
                .unwrap_or(after.len());
            if len == 0 {
                return Err(bad(&rest[pos..]));
            }
            out.push_str(&resolve(&after[..len], None));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(Interpolated { text: out, unset })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TAG" => Some("1.9".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_table() {
        let rows: &[(&str, &str, &[&str])] = &[
            ("image: nginx:${TAG}", "image: nginx:1.9", &[]),
            ("image: nginx:$TAG-alpine", "image: nginx:1.9-alpine", &[]),
            ("a: ${MISSING}", "a: ", &["MISSING"]),
            ("a: $MISSING $MISSING", "a:  ", &["MISSING"]),
            ("a: ${MISSING:-x}", "a: x", &[]),
            ("a: ${EMPTY:-x}", "a: x", &[]),
            ("a: ${EMPTY-x}", "a: ", &[]),
            ("a: ${MISSING-x}", "a: x", &[]),
            ("a: $$HOME", "a: $HOME", &[]),
            (
                "l: io.rancher.stack_service.name=${stack_name}/${service_name}",
                "l: io.rancher.stack_service.name=${stack_name}/${service_name}",
                &[],
            ),
            ("l: $${stack_name}", "l: ${stack_name}", &[]),
            ("no dollars", "no dollars", &[]),
        ];
        for (text, want, unset) in rows {
            let got = interpolate(text, env).unwrap();
            assert_eq!(got.text, *want, "{text}");
            assert_eq!(got.unset, *unset, "{text}");
        }
        let bad = [
            ("a\nb: ${OOPS", 2),
            ("a: ${}", 1),
            ("a: ${A B}", 1),
            ("a: $ x", 1),
            ("a: ${A:x}", 1),
        ];
        for (text, line) in bad {
            let e = interpolate(text, env).unwrap_err();
            assert_eq!(e.line, line, "{text}");
        }
    }
}
