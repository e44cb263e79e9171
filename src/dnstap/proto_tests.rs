//! The vendored `dnstap.proto` against the prost structs of `message.rs`:
//! every field's number (tied to its name), wire type, integer width and
//! label, and every enum's values, so the hand-written structs cannot drift
//! from the published schema.

use std::collections::BTreeMap;

use super::message::*;

/// The vendored schema.
const PROTO: &str = include_str!("dnstap.proto");

/// One field of a proto message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    /// `optional` or `required`.
    label: String,
    /// `bytes`, `uint32`, ... or a message or enum name.
    ty: String,
    /// Its number.
    number: u32,
}

/// What the schema says: messages' fields by name and enums' values in
/// order, both keyed by the full name (`Message.Type`).
#[derive(Debug, Default)]
struct Schema {
    messages: BTreeMap<String, BTreeMap<String, Field>>,
    enums: BTreeMap<String, Vec<(String, i32)>>,
}

/// Reads the subset of proto2 `dnstap.proto` uses: nested `message` and
/// `enum` blocks, `label type name = N;` fields and `NAME = N;` values.
fn schema(text: &str) -> Schema {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let spaced = code
        .replace('{', " { ")
        .replace('}', " } ")
        .replace('=', " = ")
        .replace(';', " ; ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut out = Schema::default();
    // The open blocks: (full name, is an enum).
    let mut open: Vec<(String, bool)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        match (t, open.last().cloned()) {
            ("message" | "enum", _) => {
                let full = match open.last() {
                    Some((outer, _)) => format!("{outer}.{}", tokens[i + 1]),
                    None => tokens[i + 1].to_owned(),
                };
                assert_eq!(tokens[i + 2], "{", "at {full}");
                if t == "enum" {
                    out.enums.insert(full.clone(), Vec::new());
                } else {
                    out.messages.insert(full.clone(), BTreeMap::new());
                }
                open.push((full, t == "enum"));
                i += 3;
            }
            ("}", _) => {
                open.pop().unwrap();
                i += 1;
            }
            (_, None) => {
                // `syntax = "proto2";`, `package dnstap;`
                while tokens[i] != ";" {
                    i += 1;
                }
                i += 1;
            }
            (_, Some((name, true))) => {
                assert_eq!((tokens[i + 1], tokens[i + 3]), ("=", ";"), "in {name}");
                let n = tokens[i + 2].parse().unwrap();
                out.enums.get_mut(&name).unwrap().push((t.to_owned(), n));
                i += 4;
            }
            (_, Some((name, false))) => {
                let [label, ty, field, eq, number, semi] = tokens[i..i + 6] else {
                    unreachable!()
                };
                assert_eq!((eq, semi), ("=", ";"), "in {name}.{field}");
                assert!(["optional", "required"].contains(&label), "{label}");
                let field_def = Field {
                    label: label.to_owned(),
                    ty: ty.to_owned(),
                    number: number.parse().unwrap(),
                };
                out.messages
                    .get_mut(&name)
                    .unwrap()
                    .insert(field.to_owned(), field_def);
                i += 6;
            }
        }
    }
    assert!(open.is_empty());
    out
}

/// One value as it is on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Varint(u64),
    Fixed32(u32),
    Fixed64(u64),
    Bytes(Vec<u8>),
}

/// A protobuf encoding's top-level fields, in order.
fn fields(mut b: &[u8]) -> Vec<(u32, Value)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
        }
        panic!("varint too long")
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let tag = u32::try_from(key >> 3).unwrap();
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut b)),
            1 => {
                let (v, rest) = b.split_at(8);
                b = rest;
                Value::Fixed64(u64::from_le_bytes(v.try_into().unwrap()))
            }
            2 => {
                let len = usize::try_from(varint(&mut b)).unwrap();
                let (v, rest) = b.split_at(len);
                b = rest;
                Value::Bytes(v.to_vec())
            }
            5 => {
                let (v, rest) = b.split_at(4);
                b = rest;
                Value::Fixed32(u32::from_le_bytes(v.try_into().unwrap()))
            }
            w => panic!("wire type {w}"),
        };
        out.push((tag, value));
    }
    out
}

/// The largest value of each integer width a field may have.
trait Big {
    fn big() -> Self;
}
impl Big for u32 {
    fn big() -> Self {
        u32::MAX
    }
}
impl Big for u64 {
    fn big() -> Self {
        u64::MAX
    }
}
fn big<T: Big>() -> T {
    T::big()
}

/// Checks one message: `named` has every field set (an exhaustive struct
/// literal, so a Rust field the schema lacks cannot hide) to a value
/// carrying the schema's number for that field's name; `wide` has every
/// integer at its type's largest value; the default shows the required
/// fields.
fn check_message<M: prost::Message + Default>(schema: &Schema, message: &str, named: &M, wide: &M) {
    let want = &schema.messages[message];
    let enums = &schema.enums;
    let named = fields(&named.encode_to_vec());
    let tags: Vec<u32> = named.iter().map(|(t, _)| *t).collect();
    let mut numbers: Vec<u32> = want.values().map(|f| f.number).collect();
    numbers.sort_unstable();
    assert_eq!(tags, numbers, "{message}: the Rust fields' numbers");
    for (name, field) in want {
        let (_, value) = named.iter().find(|(t, _)| *t == field.number).unwrap();
        let expect = |v: &Value| -> bool {
            match (field.ty.as_str(), v) {
                ("bytes" | "string", Value::Bytes(b)) => b == &[field.number as u8],
                ("uint32" | "uint64", Value::Varint(n)) => *n == u64::from(field.number),
                ("fixed32", Value::Fixed32(n)) => *n == field.number,
                (ty, Value::Varint(n)) if enums.contains_key(&qualified(message, ty, enums)) => {
                    *n == u64::from(field.number)
                }
                (ty, Value::Bytes(_)) if schema.messages.contains_key(ty) => true,
                _ => false,
            }
        };
        assert!(
            expect(value),
            "{message}.{name} ({} {} = {}): the struct wrote {value:?}",
            field.label,
            field.ty,
            field.number
        );
    }
    for (tag, value) in fields(&wide.encode_to_vec()) {
        let (name, field) = want.iter().find(|(_, f)| f.number == tag).unwrap();
        let width_ok = match (field.ty.as_str(), &value) {
            ("uint32", Value::Varint(n)) => *n == u64::from(u32::MAX),
            ("uint64", Value::Varint(n)) => *n == u64::MAX,
            ("fixed32", Value::Fixed32(n)) => *n == u32::MAX,
            _ => true,
        };
        assert!(width_ok, "{message}.{name} ({}): {value:?}", field.ty);
    }
    let required: Vec<u32> = fields(&M::default().encode_to_vec())
        .iter()
        .map(|(t, _)| *t)
        .collect();
    let mut want_required: Vec<u32> = want
        .values()
        .filter(|f| f.label == "required")
        .map(|f| f.number)
        .collect();
    want_required.sort_unstable();
    assert_eq!(required, want_required, "{message}: the required fields");
}

/// The full name of the type `ty` used in `message`: nested first, as
/// proto scoping does.
fn qualified(message: &str, ty: &str, enums: &BTreeMap<String, Vec<(String, i32)>>) -> String {
    let nested = format!("{message}.{ty}");
    if enums.contains_key(&nested) {
        nested
    } else {
        ty.to_owned()
    }
}

#[test]
fn the_vendored_schema_is_the_published_one_read_whole() {
    let s = schema(PROTO);
    let names: Vec<&str> = s.messages.keys().map(String::as_str).collect();
    assert_eq!(names, ["Dnstap", "Message", "Policy"]);
    assert_eq!(s.messages["Message"].len(), 16);
    assert_eq!(s.messages["Message"]["http_protocol"].number, 16);
    assert_eq!(s.enums["Message.Type"].len(), 14);
}

#[test]
fn dnstap_matches_the_schema() {
    let s = schema(PROTO);
    let f = |n: &str| s.messages["Dnstap"][n].number;
    let b = |n: &str| Some(vec![f(n) as u8]);
    let named = Payload {
        identity: b("identity"),
        version: b("version"),
        extra: b("extra"),
        r#type: f("type") as i32,
        message: Some(Message::default()),
    };
    check_message(&s, "Dnstap", &named, &Payload::default());
}

#[test]
fn message_matches_the_schema() {
    let s = schema(PROTO);
    let f = |n: &str| s.messages["Message"][n].number;
    let b = |n: &str| Some(vec![f(n) as u8]);
    let e = |n: &str| Some(f(n) as i32);
    let named = Message {
        r#type: f("type") as i32,
        socket_family: e("socket_family"),
        socket_protocol: e("socket_protocol"),
        query_address: b("query_address"),
        response_address: b("response_address"),
        query_port: Some(f("query_port")),
        response_port: Some(f("response_port")),
        query_time_sec: Some(f("query_time_sec").into()),
        query_time_nsec: Some(f("query_time_nsec")),
        query_message: b("query_message"),
        query_zone: b("query_zone"),
        response_time_sec: Some(f("response_time_sec").into()),
        response_time_nsec: Some(f("response_time_nsec")),
        response_message: b("response_message"),
        policy: Some(MessagePolicy::default()),
        http_protocol: e("http_protocol"),
    };
    let wide = Message {
        query_port: Some(big()),
        response_port: Some(big()),
        query_time_sec: Some(big()),
        query_time_nsec: Some(big()),
        response_time_sec: Some(big()),
        response_time_nsec: Some(big()),
        ..Message::default()
    };
    check_message(&s, "Message", &named, &wide);
}

#[test]
fn policy_matches_the_schema() {
    let s = schema(PROTO);
    let f = |n: &str| s.messages["Policy"][n].number;
    let named = MessagePolicy {
        r#type: Some(char::from(f("type") as u8).to_string()),
        rule: Some(vec![f("rule") as u8]),
        action: Some(f("action") as i32),
        r#match: Some(f("match") as i32),
        value: Some(vec![f("value") as u8]),
    };
    check_message(&s, "Policy", &named, &MessagePolicy::default());
}

/// Checks that the Rust enum `E` is the schema's enum `name`: each of the
/// schema's values is the number of the variant of that name (`CLIENT_QUERY`
/// is `ClientQuery`, `DNSCryptUDP` is `DnsCryptUdp`: compared without case
/// and underscores), and `E` takes no number the schema lacks.
fn check_enum<E: TryFrom<i32> + std::fmt::Debug>(schema: &Schema, name: &str) {
    fn squash(s: &str) -> String {
        s.replace('_', "").to_ascii_lowercase()
    }
    let values = &schema.enums[name];
    for (value, n) in values {
        let rust = E::try_from(*n).ok().map(|e| squash(&format!("{e:?}")));
        assert_eq!(rust, Some(squash(value)), "{name}: {value} = {n}");
    }
    for n in -2..64 {
        let known = values.iter().any(|(_, v)| *v == n);
        assert_eq!(E::try_from(n).is_ok(), known, "{name}: {n}");
    }
}

#[test]
fn enums_match_the_schema() {
    let s = schema(PROTO);
    assert_eq!(
        s.enums.len(),
        7,
        "every enum of the schema is checked below"
    );
    check_enum::<DnstapType>(&s, "Dnstap.Type");
    check_enum::<SocketFamily>(&s, "SocketFamily");
    check_enum::<SocketProtocol>(&s, "SocketProtocol");
    check_enum::<HttpProtocol>(&s, "HttpProtocol");
    check_enum::<PolicyMatch>(&s, "Policy.Match");
    check_enum::<PolicyAction>(&s, "Policy.Action");
    check_enum::<MessageType>(&s, "Message.Type");
}
