//! Resource schemas as data, the `/v1/schemas` rendering, and request body
//! decoding against them: size, JSON syntax, unknown fields, types,
//! required fields and valid characters are all checked here, before any
//! handler sees the body. Pure functions; fuzzed by the property tests.

use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::render;
use crate::cluster::model::{self, Kind};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// A field's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A string.
    Str,
    /// A name: string of valid characters.
    Name,
    /// A stack or service name: one DNS label (Rancher's
    /// `^[a-zA-Z0-9](?!.*--)[a-zA-Z0-9-]*$`, no trailing `-`, ≤ 63).
    DnsName,
    /// A secret string (never echoed).
    Password,
    /// An integer.
    Int,
    /// true/false.
    Bool,
    /// A map of string to string.
    StrMap,
    /// A list of strings.
    StrList,
    /// One of fixed options.
    Enum(&'static [&'static str]),
    /// An id of a resource of this kind.
    Ref(Kind),
    /// A JSON object (a `launchConfig`, an upgrade strategy).
    Object,
    /// PEM text (certificates, keys) up to [`MAX_PEM`] bytes; `true` for
    /// a secret one (a private key: never echoed).
    Pem(bool),
}

/// Longest PEM field (a certificate chain).
pub const MAX_PEM: usize = 64 * 1024;

impl FieldType {
    fn name(self) -> String {
        match self {
            FieldType::Str | FieldType::Name | FieldType::DnsName => "string".into(),
            FieldType::Password | FieldType::Pem(true) => "password".into(),
            FieldType::Pem(false) => "string".into(),
            FieldType::Int => "int".into(),
            FieldType::Bool => "boolean".into(),
            FieldType::StrMap => "map[string]".into(),
            FieldType::StrList => "array[string]".into(),
            FieldType::Enum(_) => "enum".into(),
            FieldType::Ref(k) => format!("reference[{}]", k.type_name()),
            FieldType::Object => "json".into(),
        }
    }
}

/// One writable field of a schema.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Field name.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// Settable on create.
    pub create: bool,
    /// Settable on update.
    pub update: bool,
    /// Required on create.
    pub required: bool,
}

const fn f(name: &'static str, ty: FieldType, create: bool, update: bool, required: bool) -> Field {
    Field {
        name,
        ty,
        create,
        update,
        required,
    }
}

const PROJECT: &[Field] = &[
    f("name", FieldType::Name, true, true, true),
    f("description", FieldType::Str, true, true, false),
    f("servicesPortRange", FieldType::Object, true, true, false),
    f("subnet", FieldType::Str, true, true, false),
    f("networkMtu", FieldType::Int, true, true, false),
];
const ACCOUNT: &[Field] = &[
    f("name", FieldType::Name, true, true, true),
    f("description", FieldType::Str, true, true, false),
];
const HOST: &[Field] = &[
    f("name", FieldType::Name, false, true, false),
    f("description", FieldType::Str, false, true, false),
    f("labels", FieldType::StrMap, false, true, false),
];
const TOKEN: &[Field] = &[
    f("name", FieldType::Name, true, true, false),
    f("description", FieldType::Str, true, true, false),
    f("expiresInSeconds", FieldType::Int, true, false, false),
];
const APIKEY: &[Field] = &[
    f("name", FieldType::Name, true, true, false),
    f("description", FieldType::Str, true, true, false),
    f("expiresInSeconds", FieldType::Int, true, false, false),
    f("privileged", FieldType::Bool, true, false, false),
    f(
        "accountId",
        FieldType::Ref(Kind::Project),
        true,
        false,
        false,
    ),
];
const NETWORK_MODES: &[&str] = &["managed", "bridge", "host", "none"];
const CONTAINER: &[Field] = &[
    f("name", FieldType::Name, true, false, false),
    f("description", FieldType::Str, true, true, false),
    f("imageUuid", FieldType::Str, true, false, true),
    f("command", FieldType::StrList, true, false, false),
    f("environment", FieldType::StrMap, true, false, false),
    f("labels", FieldType::StrMap, true, false, false),
    f(
        "requestedHostId",
        FieldType::Ref(Kind::Host),
        true,
        false,
        false,
    ),
    f(
        "networkMode",
        FieldType::Enum(NETWORK_MODES),
        true,
        false,
        false,
    ),
    f("startOnCreate", FieldType::Bool, true, false, false),
];
const STACK: &[Field] = &[
    f("name", FieldType::DnsName, true, true, true),
    f("description", FieldType::Str, true, true, false),
    f("dockerCompose", FieldType::Str, true, false, false),
    f("rancherCompose", FieldType::Str, true, false, false),
    f("environment", FieldType::StrMap, true, false, false),
    f("startOnCreate", FieldType::Bool, true, false, false),
];
const SERVICE: &[Field] = &[
    f("name", FieldType::DnsName, true, false, true),
    f("description", FieldType::Str, true, true, false),
    f("stackId", FieldType::Ref(Kind::Stack), true, false, false),
    f(
        "environmentId",
        FieldType::Ref(Kind::Stack),
        true,
        false,
        false,
    ),
    f("launchConfig", FieldType::Object, true, false, true),
    f("scale", FieldType::Int, true, true, false),
    f("startOnCreate", FieldType::Bool, true, false, false),
    f("retainIp", FieldType::Bool, true, true, false),
    f("metadata", FieldType::Object, true, true, false),
    f("lbConfig", FieldType::Object, true, true, false),
];
const CERTIFICATE: &[Field] = &[
    f("name", FieldType::Name, true, true, true),
    f("description", FieldType::Str, true, true, false),
    f("cert", FieldType::Pem(false), true, true, true),
    f("certChain", FieldType::Pem(false), true, true, false),
    f("key", FieldType::Pem(true), true, true, true),
];
/// The local auth config (not a stored resource).
pub const LOCAL_AUTH: &[Field] = &[
    f("enabled", FieldType::Bool, true, true, false),
    f("username", FieldType::Name, true, true, true),
    f("password", FieldType::Password, true, true, true),
    f(
        "accessMode",
        FieldType::Enum(&["unrestricted"]),
        true,
        true,
        false,
    ),
    f("name", FieldType::Str, true, true, false),
];

/// The writable fields of a kind.
pub fn fields(kind: Kind) -> &'static [Field] {
    match kind {
        Kind::Project => PROJECT,
        Kind::Account => ACCOUNT,
        Kind::Host => HOST,
        Kind::RegistrationToken => TOKEN,
        Kind::ApiKey => APIKEY,
        Kind::Container => CONTAINER,
        Kind::Stack => STACK,
        Kind::Service => SERVICE,
        Kind::Certificate => CERTIFICATE,
        Kind::AgentKey => &[],
    }
}

/// Create or update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// POST to a collection.
    Create,
    /// PUT to a resource.
    Update,
}

/// Decode a request body against `schema`: a JSON object whose keys are all
/// writable in `op`, each of the right type; required fields present on
/// create. An empty body is an empty object.
pub fn decode(schema: &[Field], op: Op, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            413,
            "MaxLimitExceeded",
            format!("request body larger than {MAX_BODY} bytes"),
        ));
    }
    let trimmed = body.iter().all(u8::is_ascii_whitespace);
    let value: Value = if trimmed {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                422,
                "InvalidBodyContent",
                format!("body is not valid JSON: {e}"),
            )
        })?
    };
    let Value::Object(obj) = value else {
        return Err(ApiError::new(
            422,
            "InvalidBodyContent",
            "body must be a JSON object",
        ));
    };
    let mut out = Map::new();
    for (k, v) in obj {
        // Rancher clients echo read-only fields back (`type`, `id` …): accept
        // them as no-ops instead of failing a read-modify-write.
        if matches!(k.as_str(), "type" | "id" | "links" | "actions" | "baseType") {
            continue;
        }
        let Some(field) = schema.iter().find(|f| f.name == k) else {
            return Err(ApiError::field(
                "InvalidBodyContent",
                &k,
                format!("unknown field {k:?}"),
            ));
        };
        let writable = match op {
            Op::Create => field.create,
            Op::Update => field.update,
        };
        if !writable {
            return Err(ApiError::field(
                "InvalidBodyContent",
                &k,
                format!("field {k:?} cannot be set here"),
            ));
        }
        if v.is_null() {
            if field.required {
                return Err(ApiError::field(
                    "NotNullable",
                    &k,
                    format!("{k} may not be null"),
                ));
            }
            continue;
        }
        check_type(field, &v)?;
        out.insert(k, v);
    }
    if op == Op::Create {
        if let Some(missing) = schema
            .iter()
            .find(|f| f.required && !out.contains_key(f.name))
        {
            return Err(ApiError::field(
                "MissingRequired",
                missing.name,
                format!("{} is required", missing.name),
            ));
        }
    }
    Ok(out)
}

fn check_type(field: &Field, v: &Value) -> Result<(), ApiError> {
    let bad = || {
        ApiError::field(
            "InvalidFormat",
            field.name,
            format!("{} must be of type {}", field.name, field.ty.name()),
        )
    };
    match field.ty {
        FieldType::Str | FieldType::Password => {
            let s = v.as_str().ok_or_else(bad)?;
            if s.len() > 4096 {
                return Err(ApiError::field(
                    "MaxLengthExceeded",
                    field.name,
                    format!("{} is longer than 4096", field.name),
                ));
            }
        }
        FieldType::Pem(_) => {
            let s = v.as_str().ok_or_else(bad)?;
            if s.len() > MAX_PEM {
                return Err(ApiError::field(
                    "MaxLengthExceeded",
                    field.name,
                    format!("{} is longer than {MAX_PEM}", field.name),
                ));
            }
        }
        FieldType::Name => {
            let s = v.as_str().ok_or_else(bad)?;
            if s.len() > 128 {
                return Err(ApiError::field(
                    "MaxLengthExceeded",
                    field.name,
                    format!("{} is longer than 128", field.name),
                ));
            }
            if !model::valid_name(s) {
                return Err(ApiError::field(
                    "InvalidCharacters",
                    field.name,
                    format!("{} may hold letters, digits, '-', '_' and '.'", field.name),
                ));
            }
        }
        FieldType::DnsName => {
            let s = v.as_str().ok_or_else(bad)?;
            if let Err(e) = crate::cluster::plan::compose::validate_name("", s) {
                return Err(ApiError::field(
                    e.code.as_str(),
                    field.name,
                    format!("{}: {s:?} {}", field.name, e.why),
                ));
            }
        }
        FieldType::Int => {
            if !v
                .as_i64()
                .is_some_and(|n| (0..=10_000_000_000).contains(&n))
            {
                return Err(bad());
            }
        }
        FieldType::Bool => {
            v.as_bool().ok_or_else(bad)?;
        }
        FieldType::StrMap => {
            let m = v.as_object().ok_or_else(bad)?;
            if m.len() > 256 || m.values().any(|x| !x.is_string()) {
                return Err(bad());
            }
        }
        FieldType::Object => {
            v.as_object().ok_or_else(bad)?;
        }
        FieldType::StrList => {
            let l = v.as_array().ok_or_else(bad)?;
            if l.len() > 256 || l.iter().any(|x| !x.is_string()) {
                return Err(bad());
            }
        }
        FieldType::Enum(opts) => {
            let s = v.as_str().ok_or_else(bad)?;
            if !opts.contains(&s) {
                return Err(ApiError::field(
                    "InvalidOption",
                    field.name,
                    format!("{} must be one of {}", field.name, opts.join(", ")),
                ));
            }
        }
        FieldType::Ref(kind) => {
            let s = v.as_str().ok_or_else(bad)?;
            if model::parse_id(kind, s).is_none() {
                return Err(ApiError::field(
                    "InvalidReference",
                    field.name,
                    format!("{s:?} is not a {} id", kind.type_name()),
                ));
            }
        }
    }
    Ok(())
}

/// Filter modifiers every collection accepts.
pub const MODIFIERS: &[&str] = &[
    "eq", "ne", "lt", "lte", "gt", "gte", "prefix", "like", "notlike", "null", "notnull",
];

/// The input type of an action that takes a body (`resourceActions`).
fn action_input(kind: Kind, action: &str) -> Option<&'static str> {
    match (kind, action) {
        (Kind::Service, "upgrade") => Some("serviceUpgrade"),
        (Kind::Service, "restart") => Some("serviceRestart"),
        _ => None,
    }
}

/// Service kinds listed as their own types (Rancher's `FindServiceType`);
/// their rows live in the `services` collection and carry `kind`.
pub const SERVICE_KINDS: &[(&str, &str)] = &[
    ("loadBalancerService", "loadbalancerservices"),
    ("dnsService", "dnsservices"),
    ("externalService", "externalservices"),
];

fn field_json(f: &Field) -> Value {
    let mut d = json!({
        "type": f.ty.name(), "create": f.create, "update": f.update,
        "required": f.required, "nullable": !f.required,
    });
    match f.ty {
        FieldType::Enum(o) => d["options"] = json!(o),
        FieldType::Name => {
            d["validChars"] = json!("a-zA-Z0-9_.-");
            d["maxLength"] = json!(128);
        }
        FieldType::DnsName => {
            d["validChars"] = json!("a-zA-Z0-9-");
            d["maxLength"] = json!(crate::cluster::plan::compose::names::MAX_NAME_LEN);
            d["minLength"] = json!(1);
        }
        _ => {}
    }
    d
}

/// The read-only fields every kind shows (`resourceFields` beyond the
/// writable ones), with their types.
fn shown_fields(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::Service => &[
            ("stackId", "reference[stack]"),
            ("environmentId", "reference[environment]"),
            ("currentScale", "int"),
            ("healthState", "enum"),
            ("upgrade", "serviceUpgrade"),
            ("previousLaunchConfig", "launchConfig"),
            ("launchConfig", "launchConfig"),
            ("linkedServices", "map[string]"),
            ("fqdn", "string"),
            ("createIndex", "int"),
            ("publicEndpoints", "array[publicEndpoint]"),
        ],
        Kind::Container => &[
            ("hostId", "reference[host]"),
            ("serviceId", "reference[service]"),
            ("stackId", "reference[stack]"),
            ("healthState", "enum"),
            ("healthCheck", "instanceHealthCheck"),
            ("startCount", "int"),
            ("externalId", "string"),
            ("primaryIpAddress", "string"),
            ("dataVolumes", "array[string]"),
            ("ports", "array[string]"),
            ("createIndex", "int"),
            ("removed", "date"),
        ],
        Kind::Stack => &[
            ("healthState", "enum"),
            ("serviceIds", "array[reference[service]]"),
        ],
        Kind::Host => &[
            ("hostname", "string"),
            ("agentIpAddress", "string"),
            ("info", "json"),
        ],
        Kind::RegistrationToken => &[
            ("token", "string"),
            ("registrationUrl", "string"),
            ("command", "string"),
            ("image", "string"),
        ],
        Kind::ApiKey => &[("publicValue", "string"), ("secretValue", "password")],
        Kind::Certificate => &[("certFingerprint", "string")],
        _ => &[],
    }
}

fn schema_json(base: &str, within: &str, kind: Kind, name: &str, collection: &str) -> Value {
    let mut rf = Map::new();
    let mut filters = Map::new();
    for f in [
        "id",
        "name",
        "state",
        "description",
        "created",
        "kind",
        "accountId",
        "uuid",
        "removed",
        "removeTime",
    ] {
        rf.insert(f.into(), json!({"type": "string", "nullable": true}));
        filters.insert(f.into(), json!({"modifiers": MODIFIERS}));
    }
    rf.insert("created".into(), json!({"type": "date", "nullable": true}));
    rf.insert(
        "transitioning".into(),
        json!({"type": "enum", "options": ["yes", "no", "error"]}),
    );
    rf.insert(
        "transitioningMessage".into(),
        json!({"type": "string", "nullable": true}),
    );
    let states: Vec<&str> = match kind {
        Kind::Container => model::CONTAINER_STATES.to_vec(),
        Kind::Service | Kind::Stack => crate::cluster::plan::lifecycle::ALL_STATES
            .iter()
            .map(|s| s.as_str())
            .collect(),
        _ => vec![],
    };
    if !states.is_empty() {
        rf.insert("state".into(), json!({"type": "enum", "options": states}));
    }
    if kind == Kind::Host {
        rf.insert(
            "agentState".into(),
            json!({"type": "enum", "options": model::AGENT_STATES}),
        );
        filters.insert("agentState".into(), json!({"modifiers": MODIFIERS}));
    }
    for (f, ty) in shown_fields(kind) {
        rf.insert((*f).into(), json!({"type": ty, "nullable": true}));
        filters.insert((*f).into(), json!({"modifiers": MODIFIERS}));
    }
    for f in fields(kind) {
        rf.insert(f.name.into(), field_json(f));
        filters.insert(f.name.into(), json!({"modifiers": MODIFIERS}));
    }
    if kind == Kind::Service && render::is_v1(base) {
        rf.remove("stackId");
        filters.remove("stackId");
        if let Some(e) = rf.get_mut("environmentId") {
            e["required"] = json!(true);
        }
    }
    let mut actions = Map::new();
    for a in model::action_names(kind) {
        let v = match action_input(kind, a) {
            Some(i) => json!({"input": i, "output": name}),
            None => json!({"output": name}),
        };
        actions.insert(a.into(), v);
    }
    let creatable = matches!(
        kind,
        Kind::Project
            | Kind::Account
            | Kind::RegistrationToken
            | Kind::ApiKey
            | Kind::Container
            | Kind::Stack
            | Kind::Certificate
    ) || name == "service";
    let coll_base = if kind.project_scoped() { within } else { base };
    json!({
        "id": name, "type": "schema",
        "links": {"self": format!("{base}/schemas/{}", name.to_ascii_lowercase()),
                  "collection": format!("{coll_base}/{collection}")},
        "collectionMethods": if creatable { json!(["GET", "POST"]) } else { json!(["GET"]) },
        "resourceMethods": ["GET", "PUT", "DELETE"],
        "resourceFields": rf,
        "resourceActions": actions,
        "collectionFilters": filters,
        "collectionActions": {},
        "pluralName": collection,
    })
}

/// Embedded (non-collection) types: the bodies actions take and the
/// structures inside resources, so generated clients know their fields.
fn embedded(base: &str) -> Vec<Value> {
    let t = |name: &str, fields: &[(&str, &str)]| {
        let mut rf = Map::new();
        for (f, ty) in fields {
            rf.insert(
                (*f).into(),
                json!({"type": ty, "nullable": true, "create": true, "update": true}),
            );
        }
        json!({"id": name, "type": "schema",
               "links": {"self": format!("{base}/schemas/{}", name.to_ascii_lowercase())},
               "collectionMethods": [], "resourceMethods": [],
               "resourceFields": rf, "resourceActions": {}, "collectionFilters": {},
               "pluralName": format!("{name}s")})
    };
    vec![
        t(
            "launchConfig",
            &[
                ("imageUuid", "string"),
                ("command", "array[string]"),
                ("entryPoint", "array[string]"),
                ("environment", "map[string]"),
                ("labels", "map[string]"),
                ("ports", "array[string]"),
                ("expose", "array[string]"),
                ("dataVolumes", "array[string]"),
                ("dataVolumesFrom", "array[string]"),
                ("networkMode", "enum"),
                ("healthCheck", "instanceHealthCheck"),
                ("restartPolicy", "restartPolicy"),
                ("memory", "int"),
                ("memoryReservation", "int"),
                ("milliCpuReservation", "int"),
                ("cpuShares", "int"),
                ("privileged", "boolean"),
                ("capAdd", "array[string]"),
                ("capDrop", "array[string]"),
                ("dns", "array[string]"),
                ("dnsSearch", "array[string]"),
                ("hostname", "string"),
                ("user", "string"),
                ("workingDir", "string"),
                ("logConfig", "logConfig"),
                ("drainTimeoutMs", "int"),
                ("version", "string"),
            ],
        ),
        t(
            "instanceHealthCheck",
            &[
                ("port", "int"),
                ("requestLine", "string"),
                ("interval", "int"),
                ("responseTimeout", "int"),
                ("healthyThreshold", "int"),
                ("unhealthyThreshold", "int"),
                ("initializingTimeout", "int"),
                ("reinitializingTimeout", "int"),
                ("strategy", "enum"),
                (
                    "recreateOnQuorumStrategyConfig",
                    "recreateOnQuorumStrategyConfig",
                ),
            ],
        ),
        t("recreateOnQuorumStrategyConfig", &[("quorum", "int")]),
        t(
            "serviceUpgrade",
            &[
                ("inServiceStrategy", "inServiceUpgradeStrategy"),
                ("toServiceStrategy", "toServiceUpgradeStrategy"),
            ],
        ),
        t(
            "inServiceUpgradeStrategy",
            &[
                ("batchSize", "int"),
                ("intervalMillis", "int"),
                ("startFirst", "boolean"),
                ("launchConfig", "launchConfig"),
                ("previousLaunchConfig", "launchConfig"),
            ],
        ),
        t(
            "toServiceUpgradeStrategy",
            &[
                ("toServiceId", "reference[service]"),
                ("finalScale", "int"),
                ("batchSize", "int"),
                ("intervalMillis", "int"),
                ("updateLinks", "boolean"),
            ],
        ),
        t(
            "serviceRestart",
            &[("rollingRestartStrategy", "rollingRestartStrategy")],
        ),
        t(
            "rollingRestartStrategy",
            &[("batchSize", "int"), ("intervalMillis", "int")],
        ),
        t(
            "restartPolicy",
            &[("name", "string"), ("maximumRetryCount", "int")],
        ),
        t(
            "logConfig",
            &[("driver", "string"), ("config", "map[string]")],
        ),
        t(
            "publicEndpoint",
            &[
                ("hostId", "reference[host]"),
                ("instanceId", "reference[container]"),
                ("ipAddress", "string"),
                ("port", "int"),
                ("serviceId", "reference[service]"),
            ],
        ),
        t(
            "error",
            &[
                ("status", "int"),
                ("code", "string"),
                ("message", "string"),
                ("detail", "string"),
                ("fieldName", "string"),
            ],
        ),
    ]
}

/// Every type of the API version of `base`: its resources, the service
/// kinds, and the embedded types. `within` is the project prefix that
/// project-scoped collection links use (`base` itself outside a project).
fn all(base: &str, within: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for k in Kind::ALL.into_iter().filter(|k| *k != Kind::AgentKey) {
        let name = render::type_name(base, k);
        out.push(schema_json(
            base,
            within,
            k,
            name,
            &render::collection(base, k),
        ));
    }
    out.push(schema_json(
        base,
        within,
        Kind::Container,
        "instance",
        "instances",
    ));
    for (name, coll) in SERVICE_KINDS {
        out.push(schema_json(base, within, Kind::Service, name, coll));
    }
    out.extend(embedded(base));
    out
}

/// The schema of one type, by name (case-insensitive).
pub fn schema(base: &str, within: &str, name: &str) -> Option<Value> {
    all(base, within).into_iter().find(|s| {
        s["id"]
            .as_str()
            .is_some_and(|id| id.eq_ignore_ascii_case(name))
    })
}

/// The `/schemas` collection.
pub fn schemas(base: &str, within: &str) -> Value {
    json!({"type": "collection", "resourceType": "schema",
           "links": {"self": format!("{within}/schemas")}, "data": all(base, within)})
}

/// Fuzz entry point: decode `data` as every request body the server takes.
/// Panics only when an invariant breaks (an error that is not a 4xx).
pub fn fuzz_decode(data: &[u8]) {
    for kind in Kind::ALL {
        for op in [Op::Create, Op::Update] {
            if let Err(e) = decode(fields(kind), op, data) {
                assert!((400..500).contains(&e.status), "{e:?}");
            }
        }
    }
    let _ = decode(LOCAL_AUTH, Op::Create, data);
    let _ = serde_json::from_slice::<crate::cluster::protocol::SyncRequest>(data);
    let _ = serde_json::from_slice::<crate::cluster::protocol::RegisterRequest>(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<Map<String, Value>, ApiError>) -> &'static str {
        r.err().map(|e| e.code).unwrap_or("ok")
    }

    #[test]
    fn decode_table() {
        let c = fields(Kind::Container);
        let rows: &[(&str, Op, &str)] = &[
            (r#"{"imageUuid":"docker:busybox"}"#, Op::Create, "ok"),
            (
                r#"{"imageUuid":"docker:busybox","type":"container"}"#,
                Op::Create,
                "ok",
            ),
            ("{", Op::Create, "InvalidBodyContent"),
            ("[1]", Op::Create, "InvalidBodyContent"),
            (
                r#"{"nope":1,"imageUuid":"x"}"#,
                Op::Create,
                "InvalidBodyContent",
            ),
            (r#"{"imageUuid":5}"#, Op::Create, "InvalidFormat"),
            (
                r#"{"name":"a b","imageUuid":"x"}"#,
                Op::Create,
                "InvalidCharacters",
            ),
            (r#"{}"#, Op::Create, "MissingRequired"),
            (r#"{"imageUuid":null}"#, Op::Create, "NotNullable"),
            (
                r#"{"imageUuid":"x","networkMode":"weird"}"#,
                Op::Create,
                "InvalidOption",
            ),
            (
                r#"{"imageUuid":"x","requestedHostId":"1a5"}"#,
                Op::Create,
                "InvalidReference",
            ),
            (
                r#"{"imageUuid":"x","command":["sh",1]}"#,
                Op::Create,
                "InvalidFormat",
            ),
            (r#"{"imageUuid":"x"}"#, Op::Update, "InvalidBodyContent"),
        ];
        for (body, op, want) in rows {
            assert_eq!(code(decode(c, *op, body.as_bytes())), *want, "{body}");
        }
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(code(decode(c, Op::Create, &big)), "MaxLimitExceeded");
    }

    #[test]
    fn schemas_list_every_public_kind() {
        let s = schemas("/v2-beta", "/v2-beta");
        assert!(s["data"].as_array().map_or(0, Vec::len) > 8);
        assert!(schema("/v1", "/v1", "host").is_some());
        let svc = schema("/v1", "/v1", "service").unwrap_or_default();
        for a in [
            "activate",
            "deactivate",
            "upgrade",
            "finishupgrade",
            "cancelupgrade",
            "continueupgrade",
            "rollback",
            "restart",
            "remove",
        ] {
            assert!(svc["resourceActions"].get(a).is_some(), "{a}");
        }
        assert_eq!(svc["resourceFields"]["launchConfig"]["type"], "json");
        assert!(schema("/v2-beta", "/v2-beta", "stack").is_some());
        assert!(schema("/v1", "/v1", "environment").is_some());
        assert!(schema("/v1", "/v1", "agentKey").is_none());
    }
}
