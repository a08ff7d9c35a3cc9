//! Layer merging: maps merge deeply, lists and scalars replace; and the
//! `rancher:` → `ros:` alias, applied to every layer before it is merged.

use super::node::{Entry, Node, Value};

/// The OS's own top-level key.
pub const ROS_KEY: &str = "ros";
/// The RancherOS spelling, accepted as an alias.
pub const RANCHER_KEY: &str = "rancher";

/// Rename a top-level `rancher:` to `ros:`. When both are present, `ros:`
/// wins key by key (it is the newer spelling).
pub fn normalize(mut doc: Node) -> Node {
    let Some(entries) = doc.as_map_mut() else {
        return doc;
    };
    let Some(ri) = entries.iter().position(|e| e.key == RANCHER_KEY) else {
        return doc;
    };
    let mut rancher = entries.remove(ri);
    match entries.iter().position(|e| e.key == ROS_KEY) {
        Some(oi) => {
            let ros = std::mem::replace(
                &mut entries[oi].value,
                Node::empty_map(rancher.key_span.clone()),
            );
            entries[oi].value = merge(rancher.value, ros);
        }
        None => {
            rancher.key = ROS_KEY.to_string();
            entries.insert(ri, rancher);
        }
    }
    doc
}

/// Merge `over` onto `base`: maps merge key by key (recursively), anything
/// else in `over` replaces what `base` had. Positions follow the winner.
pub fn merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Map(mut b), Value::Map(o)) => {
            for entry in o {
                match b.iter().position(|e| e.key == entry.key) {
                    Some(i) => {
                        let old =
                            std::mem::replace(&mut b[i].value, Node::null(entry.key_span.clone()));
                        b[i] = Entry {
                            key: entry.key,
                            key_span: entry.key_span,
                            value: merge(old, entry.value),
                        };
                    }
                    None => b.push(entry),
                }
            }
            Node {
                value: Value::Map(b),
                span: base.span,
            }
        }
        (_, value) => Node {
            value,
            span: over.span,
        },
    }
}

/// Merge layers in order (later wins), each normalized first.
pub fn merge_layers<I: IntoIterator<Item = Node>>(first: Node, rest: I) -> Node {
    rest.into_iter()
        .fold(normalize(first), |acc, layer| merge(acc, normalize(layer)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::{parse_document as parse, to_yaml};

    fn doc(name: &str, s: &str) -> Node {
        parse(name, s.as_bytes()).unwrap()
    }

    #[test]
    fn merge_order_table() {
        // (base, over, expected)
        let rows = [
            ("a: 1", "a: 2", "a: 2\n"),
            ("a: {b: 1, c: 2}", "a: {c: 3}", "a:\n  b: 1\n  c: 3\n"),
            ("a: [1, 2]", "a: [3]", "a:\n  - 3\n"),
            ("a: {b: 1}", "a: 5", "a: 5\n"),
            ("a: 5", "a: {b: 1}", "a:\n  b: 1\n"),
            ("a: 1", "b: 2", "a: 1\nb: 2\n"),
            (
                "rancher: {debug: true}",
                "ros: {debug: false}",
                "ros:\n  debug: false\n",
            ),
        ];
        for (b, o, want) in rows {
            let got = to_yaml(&merge_layers(doc("b", b), [doc("o", o)]));
            assert_eq!(got, want, "{b} + {o}");
        }
    }

    #[test]
    fn positions_follow_the_winning_layer() {
        let m = merge_layers(
            doc("base.yml", "a:\n  b: 1\n  c: 2\n"),
            [doc("over.yml", "a:\n  c: 3\n")],
        );
        let a = m.get("a").unwrap();
        assert_eq!(&*a.get("b").unwrap().span.source, "base.yml");
        let c = a.get("c").unwrap();
        assert_eq!((&*c.span.source, c.span.line), ("over.yml", 2));
    }

    #[test]
    fn rancher_alias_and_ros_both_present() {
        let d = normalize(doc(
            "x",
            "rancher:\n  debug: true\n  console: alpine\nros:\n  debug: false\n",
        ));
        assert_eq!(to_yaml(&d), "ros:\n  debug: false\n  console: alpine\n");
    }
}
