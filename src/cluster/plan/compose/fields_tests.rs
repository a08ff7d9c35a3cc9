//! Tables for the compose value syntaxes.

use super::*;

#[test]
fn ports_table() {
    let ok: &[(&str, &[&str])] = &[
        ("80", &["80/tcp"]),
        ("80/udp", &["80/udp"]),
        ("8080:80", &["8080:80/tcp"]),
        ("8080:80/tcp", &["8080:80/tcp"]),
        ("127.0.0.1:8081:81/tcp", &["127.0.0.1:8081:81/tcp"]),
        ("127.0.0.1::81", &["127.0.0.1::81/tcp"]),
        (
            "8000-8002:80-82",
            &["8000:80/tcp", "8001:81/tcp", "8002:82/tcp"],
        ),
        ("5000-5001/udp", &["5000/udp", "5001/udp"]),
    ];
    for (text, want) in ok {
        let got: Vec<String> = parse_port(text)
            .unwrap_or_else(|e| panic!("{text}: {e:?}"))
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(&got, want, "{text}");
    }
    let bad: &[(&str, &str)] = &[
        ("", "\"\" is not a port number"),
        ("http", "\"http\" is not a port number"),
        ("80/sctp", "unknown protocol \"sctp\""),
        ("0:80", "\"0\" is not a port number"),
        ("70000", "\"70000\" is not a port number"),
        ("a:b:c:d", "too many ':'"),
        ("host:80:80", "\"host\" is not an IPv4 address"),
        ("8000-8001:80", "ranges differ"),
        ("9-1", "bad range"),
        ("1-5000", "bad range"),
    ];
    for (text, want) in bad {
        let (code, msg) = parse_port(text).unwrap_err();
        assert_eq!(code, ErrorCode::InvalidFormat);
        assert!(msg.contains(want), "{text}: {msg}");
    }
    let random = &parse_port("80").unwrap()[0];
    assert_eq!(random.host_port().port, None);
    assert!(parse_expose("80/udp").is_ok());
    assert!(parse_expose("8080:80").is_err());
}

#[test]
fn memory_table() {
    let rows: &[(&str, Option<u64>)] = &[
        ("104857600", Some(104_857_600)),
        ("512m", Some(512 << 20)),
        ("512M", Some(512 << 20)),
        ("512mb", Some(512 << 20)),
        ("1g", Some(1 << 30)),
        ("1.5g", Some(3 << 29)),
        ("64k", Some(64 << 10)),
        ("100b", Some(100)),
        ("", None),
        ("m", None),
        ("lots", None),
        ("-1m", None),
        ("12x", None),
    ];
    for (text, want) in rows {
        assert_eq!(parse_memory(text).ok(), *want, "{text:?}");
    }
}

/// (kind, source, target, mode).
type Vol<'a> = (VolumeKind, Option<&'a str>, &'a str, Option<&'a str>);

#[test]
fn volumes_table() {
    let rows: &[(&str, Option<Vol>)] = &[
        ("/data", Some((VolumeKind::Anonymous, None, "/data", None))),
        (
            "/data:ro",
            Some((VolumeKind::Anonymous, None, "/data", Some("ro"))),
        ),
        (
            "dbdata:/var/lib/db",
            Some((VolumeKind::Named, Some("dbdata"), "/var/lib/db", None)),
        ),
        (
            "/srv:/srv:ro,z",
            Some((VolumeKind::Bind, Some("/srv"), "/srv", Some("ro,z"))),
        ),
        ("./x:/x", None),
        ("data", None),
        ("/a:/b:fast", None),
        ("a:b:c:d", None),
    ];
    for (text, want) in rows {
        let got = parse_volume(text)
            .ok()
            .map(|v| (v.kind, v.source, v.target, v.mode));
        let want =
            want.map(|(k, s, t, m)| (k, s.map(String::from), t.to_string(), m.map(String::from)));
        assert_eq!(got, want, "{text}");
    }
    assert_eq!(
        parse_volume("./x:/x").unwrap_err().0,
        ErrorCode::InvalidOption
    );
}

#[test]
fn restart_network_links_table() {
    for (text, ok) in [
        ("no", true),
        ("false", true),
        ("always", true),
        ("on-failure", true),
        ("on-failure:3", true),
        ("unless-stopped", true),
        ("on-failure:x", false),
        ("sometimes", false),
        ("always:3", false),
    ] {
        assert_eq!(parse_restart(text).is_ok(), ok, "{text}");
    }
    assert_eq!(
        parse_restart("on-failure:3").unwrap().maximum_retry_count,
        Some(3)
    );
    let modes = [
        ("host", Some(NetworkMode::Host)),
        ("managed", Some(NetworkMode::Managed)),
        ("bridge", Some(NetworkMode::Bridge)),
        ("none", Some(NetworkMode::None)),
        ("container:db", Some(NetworkMode::Container("db".into()))),
        ("service:main", Some(NetworkMode::Service("main".into()))),
        ("container:", None),
        ("overlay", None),
    ];
    for (text, want) in modes {
        assert_eq!(parse_network_mode(text).ok(), want, "{text}");
    }
    let l = parse_link("db").unwrap();
    assert_eq!(
        (l.stack, l.service.as_str(), l.alias.as_str()),
        (None, "db", "db")
    );
    let l = parse_link("other/db:database").unwrap();
    assert_eq!(
        (l.stack.as_deref(), l.service.as_str(), l.alias.as_str()),
        (Some("other"), "db", "database")
    );
    assert!(parse_link("db:").is_err());
    assert!(parse_link("other/").is_err());
}
