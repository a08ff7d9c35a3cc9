//! Collection queries: filters (`field=v`, `field_ne=v`, `name_like=web%`,
//! `removed_null=true` …), `sort`/`order`, and `limit`/`marker` pagination,
//! applied to rendered resources. Pure; table-tested.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::schema::MODIFIERS;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size (Rancher caps `limit` at 3000).
pub const MAX_LIMIT: usize = 3000;

/// A parsed collection query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// `(field, modifier, value)` conditions, all must hold.
    pub filters: Vec<(String, String, String)>,
    /// Sort field.
    pub sort: Option<String>,
    /// Descending order.
    pub desc: bool,
    /// Page size.
    pub limit: usize,
    /// Offset of this page.
    pub offset: usize,
}

/// Parse query pairs (`action` and `include` are ignored here).
pub fn parse(pairs: &[(String, String)]) -> Result<Query, ApiError> {
    let mut q = Query {
        limit: DEFAULT_LIMIT,
        ..Query::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                let n: i64 = v.parse().map_err(|_| {
                    ApiError::field("InvalidFormat", "limit", "limit must be a number")
                })?;
                q.limit = usize::try_from(n.max(1)).unwrap_or(1).min(MAX_LIMIT);
            }
            "marker" => {
                q.offset = v
                    .strip_prefix('m')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        ApiError::field("InvalidFormat", "marker", "marker is not valid")
                    })?;
            }
            "sort" => q.sort = Some(v.clone()),
            "order" => match v.as_str() {
                "asc" => q.desc = false,
                "desc" => q.desc = true,
                _ => {
                    return Err(ApiError::field(
                        "InvalidOption",
                        "order",
                        "order must be asc or desc",
                    ))
                }
            },
            "reverse" => q.desc = v == "true",
            "action" | "include" | "_" => {}
            _ => {
                let (field, modifier) = match k.rsplit_once('_') {
                    Some((f, m)) if MODIFIERS.contains(&m) && !f.is_empty() => (f, m),
                    _ => (k.as_str(), "eq"),
                };
                q.filters
                    .push((field.to_string(), modifier.to_string(), v.clone()));
            }
        }
    }
    Ok(q)
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// SQL LIKE: `%` any run, `_` one character.
pub fn like(pattern: &str, s: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('%', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some(('_', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().take(256).collect();
    let s: Vec<char> = s.chars().collect();
    // Collapse runs of '%' so the backtracking stays polynomial.
    let mut q: Vec<char> = Vec::with_capacity(p.len());
    for c in p {
        if !(c == '%' && q.last() == Some(&'%')) {
            q.push(c);
        }
    }
    go(&q, &s)
}

fn compare_text(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => id_key(a).cmp(&id_key(b)),
    }
}

/// Natural sort key: `1h9` before `1h10`, `web-2` before `web-10`.
fn id_key(s: &str) -> (&str, u64) {
    let i = s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    (&s[..i], s[i..].parse().unwrap_or(0))
}

fn matches(have: Option<String>, modifier: &str, want: &str) -> bool {
    match modifier {
        "null" => have.is_none(),
        "notnull" => have.is_some(),
        _ => {
            let Some(h) = have else {
                return modifier == "ne" || modifier == "notlike";
            };
            match modifier {
                "eq" => h == want,
                "ne" => h != want,
                "lt" => compare_text(&h, want) == Ordering::Less,
                "lte" => compare_text(&h, want) != Ordering::Greater,
                "gt" => compare_text(&h, want) == Ordering::Greater,
                "gte" => compare_text(&h, want) != Ordering::Less,
                "prefix" => h.starts_with(want),
                "like" => like(want, &h),
                "notlike" => !like(want, &h),
                _ => false,
            }
        }
    }
}

/// Apply filters, sort and the page to rows in id order, reading fields
/// through `get` (so only the page needs rendering); returns the page and
/// the total count after filtering.
pub fn apply<T>(
    q: &Query,
    mut rows: Vec<T>,
    get: impl Fn(&T, &str) -> Option<Value>,
) -> (Vec<T>, usize) {
    let text = |r: &T, f: &str| get(r, f).as_ref().and_then(as_text);
    rows.retain(|r| q.filters.iter().all(|(f, m, v)| matches(text(r, f), m, v)));
    match q.sort.as_deref() {
        // Rows arrive in id order already.
        None | Some("id") => {}
        Some(field) => {
            // Stable sort: equal keys keep creation (id) order.
            let mut keyed: Vec<(String, T)> = rows
                .into_iter()
                .map(|r| (text(&r, field).unwrap_or_default(), r))
                .collect();
            keyed.sort_by(|a, b| compare_text(&a.0, &b.0));
            rows = keyed.into_iter().map(|(_, r)| r).collect();
        }
    }
    if q.desc {
        rows.reverse();
    }
    let total = rows.len();
    let page = rows.into_iter().skip(q.offset).take(q.limit).collect();
    (page, total)
}

/// The `pagination`, `sort` and `filters` blocks of a collection.
pub fn envelope(q: &Query, total: usize, self_url: &str) -> (Value, Value, Value) {
    let next = (q.offset + q.limit < total).then(|| {
        let sep = if self_url.contains('?') { '&' } else { '?' };
        format!("{self_url}{sep}marker=m{}", q.offset + q.limit)
    });
    let pagination = json!({
        "first": null, "previous": null, "next": next, "limit": q.limit,
        "total": total, "partial": next.is_some(),
        "marker": if q.offset > 0 { Some(format!("m{}", q.offset)) } else { None },
    });
    let sort = json!({
        "name": q.sort.clone().unwrap_or_else(|| "id".into()),
        "order": if q.desc { "desc" } else { "asc" },
        "reverse": "",
    });
    let mut filters = Map::new();
    for (f, m, v) in &q.filters {
        let e = filters.entry(f.clone()).or_insert_with(|| json!([]));
        if let Some(a) = e.as_array_mut() {
            a.push(json!({"modifier": m, "value": v}));
        }
    }
    (pagination, sort, Value::Object(filters))
}

/// Percent-encode one query key or value (RFC 3986 unreserved bytes stay),
/// so links such as `pagination.next` parse under strict URL parsers.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn rows() -> Vec<Value> {
        (1..=12)
            .map(|i| {
                json!({"id": format!("1h{i}"), "name": format!("web-{i}"),
                       "state": if i % 2 == 0 { "active" } else { "inactive" },
                       "removed": if i == 3 { json!(123) } else { Value::Null }})
            })
            .collect()
    }

    fn ids(q: &str) -> Vec<String> {
        let q = parse(&pairs(q)).unwrap();
        apply(&q, rows(), |r, f| r.get(f).cloned())
            .0
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn filter_sort_page_table() {
        assert_eq!(ids("state=active&limit=2"), ["1h2", "1h4"]);
        assert_eq!(ids("state_ne=active&limit=1&marker=m1"), ["1h3"]);
        assert_eq!(ids("name_like=web-1%"), ["1h1", "1h10", "1h11", "1h12"]);
        assert_eq!(ids("removed_notnull=true"), ["1h3"]);
        assert_eq!(ids("removed_null=true").len(), 11);
        assert_eq!(ids("sort=id&order=desc&limit=3"), ["1h12", "1h11", "1h10"]);
        assert_eq!(ids("name_prefix=web-2"), ["1h2"]);
        assert_eq!(ids("id_gt=1h10"), ["1h11", "1h12"]);
        assert_eq!(ids("limit=0").len(), 1);
        assert_eq!(parse(&pairs("limit=10005")).unwrap().limit, MAX_LIMIT);
        assert!(parse(&pairs("limit=x")).is_err());
        assert!(parse(&pairs("order=up")).is_err());
    }

    #[test]
    fn like_patterns() {
        assert!(like("a%c", "abbbc"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "ac"));
        assert!(!like(&"%".repeat(100), "") || like("%", ""));
        assert!(!like("%%%%%%%%%%%%%%%%%%%%b", &"a".repeat(200)));
    }
}
