//! The oracle's corpus: messages of `portway.testing.v1` (proto/portway/testing/v1/corpus.proto)
//! with every scalar at its edges, enums with unknown numbers, oneofs, maps, repeated and nested
//! fields and every well-known type. (The inputs, accepted and refused, are in inputs.rs.)

use std::collections::BTreeMap;
use std::sync::Arc;

use portway::pb::portway::testing::v1::{self as pb, oneofs::Choice};
use portway::protojson::Any;
use portway::protojson::value::Kind;
use portway::protojson::{
    BoolValue, BytesValue, DoubleValue, Duration, FieldMask, FloatValue, Int32Value, Int64Value, ListValue,
    StringValue, Struct, Timestamp, UInt32Value, UInt64Value, Value,
};
use portway::transcode::codec::DepthLimited;
use portway::transcode::{MessageCodec, codec};
use prost::Message as _;

/// One message, to be written by portway and judged by the reference.
pub enum Message {
    Scalars(pb::Scalars),
    Repeated(pb::Repeated),
    Optionals(pb::Optionals),
    Maps(pb::Maps),
    Oneofs(pb::Oneofs),
    Nested(pb::Nested),
    WellKnown(pb::WellKnown),
}

const RED: i32 = pb::Color::Red as i32;
const GREEN: i32 = pb::Color::Green as i32;

fn ts(seconds: i64, nanos: i32) -> Timestamp {
    Timestamp { seconds, nanos }
}

fn obj(pairs: &[(&str, Value)]) -> Value {
    Value::from(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>())
}

fn any<M: prost::Message>(name: &str, message: &M) -> Any {
    Any { type_url: format!("type.googleapis.com/{name}"), value: message.encode_to_vec().into() }
}

fn nested(depth: usize) -> pb::Nested {
    let mut n = pb::Nested { name: "leaf".into(), ..Default::default() };
    for i in 0..depth {
        n = pb::Nested { name: format!("level {i}"), child: Some(Box::new(n)), children: vec![] };
    }
    n
}

/// The codec of a corpus type, as the gateway uses it (with the default depth limit).
pub fn codec_for(short: &str) -> Arc<dyn MessageCodec> {
    let inner = match short {
        "Scalars" => codec::<pb::Scalars>("portway.testing.v1.Scalars"),
        "Repeated" => codec::<pb::Repeated>("portway.testing.v1.Repeated"),
        "Optionals" => codec::<pb::Optionals>("portway.testing.v1.Optionals"),
        "Maps" => codec::<pb::Maps>("portway.testing.v1.Maps"),
        "Oneofs" => codec::<pb::Oneofs>("portway.testing.v1.Oneofs"),
        "Nested" => codec::<pb::Nested>("portway.testing.v1.Nested"),
        "WellKnown" => codec::<pb::WellKnown>("portway.testing.v1.WellKnown"),
        other => panic!("no corpus type {other}"),
    };
    Arc::new(DepthLimited::new(inner, portway::protojson::DEFAULT_MAX_DEPTH))
}

pub fn encode(message: &Message) -> (&'static str, Vec<u8>) {
    match message {
        Message::Scalars(m) => ("Scalars", m.encode_to_vec()),
        Message::Repeated(m) => ("Repeated", m.encode_to_vec()),
        Message::Optionals(m) => ("Optionals", m.encode_to_vec()),
        Message::Maps(m) => ("Maps", m.encode_to_vec()),
        Message::Oneofs(m) => ("Oneofs", m.encode_to_vec()),
        Message::Nested(m) => ("Nested", m.encode_to_vec()),
        Message::WellKnown(m) => ("WellKnown", m.encode_to_vec()),
    }
}

/// The messages portway writes and the reference must read back.
pub fn messages() -> Vec<(&'static str, Message)> {
    use Message as M;
    let all_bytes: Vec<u8> = (0..=255).collect();
    vec![
        ("scalars: empty", M::Scalars(pb::Scalars::default())),
        (
            "scalars: maxima",
            M::Scalars(pb::Scalars {
                int32_field: i32::MAX,
                int64_field: i64::MAX,
                uint32_field: u32::MAX,
                uint64_field: u64::MAX,
                sint32_field: i32::MAX,
                sint64_field: i64::MAX,
                fixed32_field: u32::MAX,
                fixed64_field: u64::MAX,
                sfixed32_field: i32::MAX,
                sfixed64_field: i64::MAX,
                float_field: f32::MAX,
                double_field: f64::MAX,
                bool_field: true,
                string_field: "é\u{0}\"\\\n\t\u{1F600}</script>\u{2028}".into(),
                bytes_field: all_bytes.clone(),
                color: GREEN,
                renamed: 5,
                snake_case_name_2: 7,
            }),
        ),
        (
            "scalars: minima",
            M::Scalars(pb::Scalars {
                int32_field: i32::MIN,
                int64_field: i64::MIN,
                uint32_field: 1,
                uint64_field: 1,
                sint32_field: i32::MIN,
                sint64_field: i64::MIN,
                fixed32_field: 1,
                fixed64_field: 1,
                sfixed32_field: i32::MIN,
                sfixed64_field: i64::MIN,
                float_field: f32::MIN_POSITIVE,
                double_field: 5e-324,
                string_field: " ".into(),
                bytes_field: vec![0],
                color: RED,
                renamed: -1,
                snake_case_name_2: -1,
                ..Default::default()
            }),
        ),
        (
            "scalars: special floats, unknown enum number",
            M::Scalars(pb::Scalars {
                float_field: f32::NAN,
                double_field: f64::INFINITY,
                color: 7,
                ..Default::default()
            }),
        ),
        (
            "scalars: negative infinities, negative unknown enum",
            M::Scalars(pb::Scalars {
                float_field: f32::NEG_INFINITY,
                double_field: f64::NAN,
                color: -3,
                ..Default::default()
            }),
        ),
        (
            "scalars: whole and fractional floats, 2^53 + 1",
            M::Scalars(pb::Scalars {
                float_field: 0.1,
                double_field: 1.0,
                int64_field: 9_007_199_254_740_993,
                uint64_field: 9_007_199_254_740_993,
                ..Default::default()
            }),
        ),
        (
            "scalars: large doubles",
            M::Scalars(pb::Scalars { float_field: 1e-45, double_field: 1e300, ..Default::default() }),
        ),
        (
            "scalars: small doubles",
            M::Scalars(pb::Scalars { float_field: 16_777_216.0, double_field: -1.5e-300, ..Default::default() }),
        ),
        (
            "repeated: every type",
            M::Repeated(pb::Repeated {
                int32_field: vec![0, -1, i32::MAX, i32::MIN],
                int64_field: vec![0, i64::MIN, i64::MAX],
                uint32_field: vec![u32::MAX, 0],
                uint64_field: vec![u64::MAX, 0],
                sint64_field: vec![-1, 1],
                fixed64_field: vec![u64::MAX],
                float_field: vec![0.0, -0.0, 1.5, f32::NAN, f32::INFINITY, 3.0],
                double_field: vec![-0.0, 0.1, f64::NEG_INFINITY, 2.0, 1e21, 1e-7],
                bool_field: vec![true, false],
                string_field: vec!["".into(), "a".into(), "\u{7f}".into()],
                bytes_field: vec![vec![], vec![0xfb, 0xff], vec![0xfb, 0xff, 0xbf]],
                color: vec![RED, 0, 9, GREEN, -1],
                nested: vec![nested(0), pb::Nested::default(), nested(2)],
            }),
        ),
        (
            "optionals: set to their defaults",
            M::Optionals(pb::Optionals {
                int32_field: Some(0),
                int64_field: Some(0),
                uint64_field: Some(0),
                double_field: Some(-0.0),
                float_field: Some(0.0),
                bool_field: Some(false),
                string_field: Some(String::new()),
                bytes_field: Some(vec![]),
                color: Some(0),
            }),
        ),
        (
            "optionals: set",
            M::Optionals(pb::Optionals {
                int32_field: Some(-5),
                int64_field: Some(-5),
                uint64_field: Some(5),
                double_field: Some(f64::NAN),
                float_field: Some(2.5),
                bool_field: Some(true),
                string_field: Some("x".into()),
                bytes_field: Some(vec![1, 2, 3]),
                color: Some(42),
            }),
        ),
        ("optionals: unset", M::Optionals(pb::Optionals::default())),
        (
            "maps: every key kind",
            M::Maps(pb::Maps {
                string_to_string: [
                    ("b", "2"),
                    ("a", "1"),
                    ("A", "0"),
                    ("é", "3"),
                    ("", "empty"),
                    ("10", "x"),
                    ("9", "y"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                int32_to_int32: [(-1, 1), (0, 0), (10, -10), (9, 9), (i32::MIN, i32::MAX)].into(),
                int64_to_int64: [(i64::MIN, i64::MAX), (-2, 2), (3, 0)].into(),
                uint32_to_uint64: [(u32::MAX, u64::MAX), (0, 1)].into(),
                uint64_to_double: [(u64::MAX, f64::NAN), (1, 1.0), (2, 0.5)].into(),
                sint32_to_float: [(-7, f32::NEG_INFINITY), (7, 0.25)].into(),
                sint64_to_bytes: [(-1, vec![0xff]), (1, vec![])].into(),
                fixed32_to_bool: [(1, true), (2, false)].into(),
                bool_to_color: [(true, RED), (false, 99)].into(),
                string_to_nested: [("n".to_string(), nested(1)), ("e".to_string(), pb::Nested::default())].into(),
                string_to_value: [
                    ("null".to_string(), Value::from(())),
                    ("obj".to_string(), obj(&[("z", Value::from(1.0)), ("a", Value::from(vec![]))])),
                    ("s".to_string(), Value::from("v")),
                ]
                .into(),
                sfixed64_to_timestamp: [(-1, ts(0, 0)), (1, ts(1, 1_000))].into(),
            }),
        ),
        ("maps: empty", M::Maps(pb::Maps::default())),
        ("oneof: int64 zero", M::Oneofs(pb::Oneofs { choice: Some(Choice::Int64Choice(0)) })),
        ("oneof: int64", M::Oneofs(pb::Oneofs { choice: Some(Choice::Int64Choice(i64::MIN)) })),
        ("oneof: empty string", M::Oneofs(pb::Oneofs { choice: Some(Choice::StringChoice(String::new())) })),
        ("oneof: empty message", M::Oneofs(pb::Oneofs { choice: Some(Choice::NestedChoice(pb::Nested::default())) })),
        ("oneof: default enum", M::Oneofs(pb::Oneofs { choice: Some(Choice::ColorChoice(0)) })),
        ("oneof: unknown enum", M::Oneofs(pb::Oneofs { choice: Some(Choice::ColorChoice(12)) })),
        ("oneof: bytes", M::Oneofs(pb::Oneofs { choice: Some(Choice::BytesChoice(vec![0xde, 0xad])) })),
        ("oneof: NaN", M::Oneofs(pb::Oneofs { choice: Some(Choice::DoubleChoice(f64::NAN)) })),
        ("oneof: Value null", M::Oneofs(pb::Oneofs { choice: Some(Choice::ValueChoice(Value::from(()))) })),
        (
            "oneof: Value list",
            M::Oneofs(pb::Oneofs { choice: Some(Choice::ValueChoice(Value::from(vec![Value::from(())]))) }),
        ),
        ("oneof: NullValue", M::Oneofs(pb::Oneofs { choice: Some(Choice::NullChoice(0)) })),
        ("oneof: Empty", M::Oneofs(pb::Oneofs { choice: Some(Choice::EmptyChoice(Default::default())) })),
        ("oneof: Timestamp", M::Oneofs(pb::Oneofs { choice: Some(Choice::TimestampChoice(ts(-1, 0))) })),
        ("oneof: unset", M::Oneofs(pb::Oneofs::default())),
        ("nested: 30 levels", M::Nested(nested(30))),
        (
            "nested: children",
            M::Nested(pb::Nested { name: "root".into(), child: None, children: vec![nested(1), nested(0), nested(3)] }),
        ),
        (
            "well-known: every type",
            M::WellKnown(pb::WellKnown {
                timestamp: Some(ts(1_700_000_000, 123_000_000)),
                duration: Some(Duration { seconds: -1, nanos: -500_000_000 }),
                field_mask: Some(FieldMask { paths: vec!["user.display_name".into(), "a".into()] }),
                struct_field: Some(Struct {
                    fields: [
                        ("zeta".to_string(), Value::from(true)),
                        ("alpha".to_string(), Value::from(0.5)),
                        ("mid".to_string(), obj(&[("k", Value::from(()))])),
                        ("n".to_string(), Value::from(-0.0)),
                    ]
                    .into(),
                }),
                value: Some(Value::from(3.0)),
                list_value: Some(ListValue::from(vec![Value::from("a"), Value::from(vec![]), obj(&[])])),
                null_value: 0,
                empty: Some(Default::default()),
                double_value: Some(DoubleValue::from(f64::INFINITY)),
                float_value: Some(FloatValue::from(-0.5)),
                int64_value: Some(Int64Value::from(i64::MIN)),
                uint64_value: Some(UInt64Value::from(u64::MAX)),
                int32_value: Some(Int32Value::from(i32::MIN)),
                uint32_value: Some(UInt32Value::from(u32::MAX)),
                bool_value: Some(BoolValue::from(true)),
                string_value: Some(StringValue::from("s".to_string())),
                bytes_value: Some(BytesValue::from(vec![0xfb, 0xef])),
                timestamps: vec![
                    ts(0, 0),
                    ts(0, 1),
                    ts(0, 1_000),
                    ts(0, 1_000_000),
                    ts(-62_135_596_800, 0),
                    ts(253_402_300_799, 999_999_999),
                ],
                durations: vec![
                    Duration { seconds: 0, nanos: 0 },
                    Duration { seconds: 0, nanos: -1 },
                    Duration { seconds: 315_576_000_000, nanos: 999_999_999 },
                    Duration { seconds: 1, nanos: 10_000_000 },
                ],
                values: vec![
                    Value::from(()),
                    Value::from(1e300),
                    Value::from(""),
                    Value { kind: Some(Kind::BoolValue(false)) },
                ],
                int64_values: vec![Int64Value::from(0), Int64Value::from(-1)],
                optional_null: Some(0),
                any: None,
                anys: vec![],
            }),
        ),
        (
            "well-known: wrappers of defaults",
            M::WellKnown(pb::WellKnown {
                double_value: Some(DoubleValue::from(0.0)),
                float_value: Some(FloatValue::from(f32::NAN)),
                int64_value: Some(Int64Value::from(0)),
                uint64_value: Some(UInt64Value::from(0)),
                int32_value: Some(Int32Value::from(0)),
                uint32_value: Some(UInt32Value::from(0)),
                bool_value: Some(BoolValue::from(false)),
                string_value: Some(StringValue::from(String::new())),
                bytes_value: Some(BytesValue::from(vec![])),
                struct_field: Some(Struct::default()),
                list_value: Some(ListValue::default()),
                value: Some(obj(&[])),
                field_mask: Some(FieldMask::default()),
                duration: Some(Duration::default()),
                timestamp: Some(Timestamp::default()),
                ..Default::default()
            }),
        ),
        (
            "well-known: Any of every kind",
            M::WellKnown(pb::WellKnown {
                any: Some(any(
                    "portway.testing.v1.Scalars",
                    &pb::Scalars {
                        int32_field: 1,
                        int64_field: -5,
                        color: 7,
                        double_field: f64::NAN,
                        ..Default::default()
                    },
                )),
                anys: vec![
                    any("google.protobuf.Timestamp", &ts(1, 500_000_000)),
                    any("google.protobuf.Duration", &Duration { seconds: -3, nanos: 0 }),
                    any("google.protobuf.FieldMask", &FieldMask { paths: vec!["a_b".into()] }),
                    any("google.protobuf.Struct", &Struct { fields: [("k".to_string(), Value::from(1.5))].into() }),
                    any("google.protobuf.Value", &Value::from(())),
                    any("google.protobuf.ListValue", &ListValue::from(vec![Value::from(true)])),
                    any("google.protobuf.Int64Value", &Int64Value::from(i64::MAX)),
                    any("google.protobuf.BytesValue", &BytesValue::from(vec![1, 2])),
                    any("google.protobuf.Empty", &pbjson_types::Empty {}),
                    any("portway.testing.v1.Nested", &nested(2)),
                    any("google.protobuf.Any", &any("portway.testing.v1.Nested", &nested(1))),
                    any(
                        "portway.testing.v1.Maps",
                        &pb::Maps { bool_to_color: [(true, 5)].into(), ..Default::default() },
                    ),
                    Any::default(),
                ],
                ..Default::default()
            }),
        ),
        ("well-known: Value null", M::WellKnown(pb::WellKnown { value: Some(Value::from(())), ..Default::default() })),
        (
            "well-known: deep Value",
            M::WellKnown(pb::WellKnown {
                value: Some((0..20).fold(Value::from("core"), |v, i| {
                    if i % 2 == 0 { Value::from(vec![v]) } else { obj(&[("k", v)]) }
                })),
                ..Default::default()
            }),
        ),
    ]
}
