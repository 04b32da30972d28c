//! The differential test: for the same message, the descriptor-driven codec prints exactly
//! the bytes the generated codec prints, and reads the same JSON into the same message (or
//! refuses it as the generated codec does).

use prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, MapKey, MessageDescriptor, Value};
use std::collections::HashMap;

use super::Schema;
use crate::transcode::{MessageCodec, MethodTable};

/// How many entries a random map gets at most (both paths write map keys in order).
const MAP_ENTRIES: usize = 4;

fn schema() -> Schema {
    Schema::decode(crate::pb::FILE_DESCRIPTOR_SET).expect("portway's own descriptors decode")
}

/// Every request and response type of the generated method table, with its generated codec.
fn generated_codecs(table: &MethodTable) -> Vec<&dyn MessageCodec> {
    let mut by_type: HashMap<String, &dyn MessageCodec> = HashMap::new();
    for m in table.iter() {
        for codec in [m.request(), m.response()] {
            by_type.entry(codec.type_name().to_owned()).or_insert(codec);
        }
    }
    let mut codecs: Vec<_> = by_type.into_values().collect();
    codecs.sort_by(|a, b| a.type_name().cmp(b.type_name()));
    codecs
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())].clone()
    }
}

const F64S: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -3.0,
    0.1,
    1.5,
    -2.5e-8,
    1e21,
    1e300,
    -1e-300,
    f64::MIN_POSITIVE,
    5e-324,
    f64::MAX,
    f64::MIN,
    9_007_199_254_740_991.0,
    9_007_199_254_740_992.0,
    -9_007_199_254_740_993.0,
    123_456_789.125,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];
const F32S: &[f32] = &[
    0.0,
    -0.0,
    1.0,
    0.1,
    2.5,
    -7.0,
    16_777_216.0,
    16_777_217.0,
    3e38,
    f32::MIN_POSITIVE,
    1e-45,
    f32::NAN,
    f32::INFINITY,
];
const STRINGS: &[&str] = &[
    "",
    "a",
    "héllo wörld",
    "quote \" backslash \\ slash /",
    "\u{0}\u{1f}\n\t\r",
    "😀 \u{2028}\u{2029}",
    "<script>&amp;",
];

fn random_f64(rng: &mut Rng) -> f64 {
    if rng.below(4) == 0 { f64::from_bits(rng.next()) } else { rng.pick(F64S) }
}

fn random_f32(rng: &mut Rng) -> f32 {
    if rng.below(4) == 0 { f32::from_bits(rng.next() as u32) } else { rng.pick(F32S) }
}

fn random_i64(rng: &mut Rng) -> i64 {
    match rng.below(6) {
        0 => 0,
        1 => -1,
        2 => i64::MIN,
        3 => i64::MAX,
        4 => rng.below(1000) as i64,
        _ => rng.next() as i64,
    }
}

fn random_string(rng: &mut Rng) -> String {
    if rng.below(3) == 0 {
        (0..rng.below(12)).map(|_| char::from(b' ' + rng.below(95) as u8)).collect()
    } else {
        rng.pick(STRINGS).to_owned()
    }
}

fn random_value(kind: &Kind, rng: &mut Rng, depth: usize) -> Value {
    match kind {
        Kind::Double => Value::F64(random_f64(rng)),
        Kind::Float => Value::F32(random_f32(rng)),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(random_i64(rng) as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(random_i64(rng)),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(random_i64(rng) as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(random_i64(rng) as u64),
        Kind::Bool => Value::Bool(rng.below(2) == 0),
        Kind::String => Value::String(random_string(rng)),
        Kind::Bytes => Value::Bytes((0..rng.below(9)).map(|_| rng.next() as u8).collect::<Vec<u8>>().into()),
        Kind::Enum(e) => {
            let known: Vec<i32> = e.values().map(|v| v.number()).collect();
            if rng.below(5) == 0 {
                Value::EnumNumber(1000 + rng.below(5) as i32)
            } else {
                Value::EnumNumber(rng.pick(&known))
            }
        }
        Kind::Message(m) => Value::Message(random_message(m, rng, depth + 1)),
    }
}

fn random_map_key(kind: &Kind, rng: &mut Rng) -> MapKey {
    match random_value(kind, rng, 0) {
        Value::Bool(v) => MapKey::Bool(v),
        Value::I32(v) => MapKey::I32(v),
        Value::I64(v) => MapKey::I64(v),
        Value::U32(v) => MapKey::U32(v),
        Value::U64(v) => MapKey::U64(v),
        Value::String(v) => MapKey::String(v),
        other => panic!("not a map key: {other:?}"),
    }
}

/// A random message of type `desc`: each field set or not, with edge values; well-known
/// types only with values their JSON form can hold.
fn random_message(desc: &MessageDescriptor, rng: &mut Rng, depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    if depth > 4 {
        return message;
    }
    match desc.full_name() {
        "google.protobuf.Timestamp" | "google.protobuf.Duration" => {
            let seconds =
                rng.below(100_000_000_000) as i64 - if desc.name() == "Duration" { 50_000_000_000 } else { 0 };
            let nanos = rng.pick(&[0, 1, 1_000, 1_000_000, 999_999_999, 500_000_000]);
            let nanos = if seconds < 0 { -nanos } else { nanos };
            message.set_field_by_name("seconds", Value::I64(seconds));
            message.set_field_by_name("nanos", Value::I32(nanos));
            return message;
        }
        "google.protobuf.FieldMask" => {
            let paths = (0..rng.below(3)).map(|_| Value::String(rng.pick(&["a", "foo_bar", "x.y_z"]).to_owned()));
            message.set_field_by_name("paths", Value::List(paths.collect()));
            return message;
        }
        "google.protobuf.Any" => return message,
        "google.protobuf.Value" => {
            // One kind of value, always (an empty `Value` is not valid JSON input).
            let kinds: &[&str] = if depth > 3 {
                &["bool_value"]
            } else {
                &["null_value", "number_value", "string_value", "bool_value", "struct_value", "list_value"]
            };
            let field = desc.get_field_by_name(rng.pick(kinds)).expect("a field of Value");
            let value = random_value(&field.kind(), rng, depth);
            message.set_field(&field, value);
            return message;
        }
        _ => {}
    }
    for field in desc.fields() {
        if rng.below(3) == 0 {
            continue;
        }
        let value = if field.is_map() {
            let Kind::Message(entry) = field.kind() else { unreachable!("a map field's type is its entry") };
            let (key, value) = (entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind());
            let entries =
                (0..rng.below(MAP_ENTRIES + 1)).map(|_| (random_map_key(&key, rng), random_value(&value, rng, depth)));
            Value::Map(entries.collect())
        } else if field.is_list() {
            Value::List((0..rng.below(4)).map(|_| random_value(&field.kind(), rng, depth)).collect())
        } else {
            random_value(&field.kind(), rng, depth)
        };
        message.set_field(&field, value);
    }
    message
}

fn text(bytes: Result<Vec<u8>, crate::transcode::CodecError>) -> Result<String, String> {
    bytes.map(|b| String::from_utf8(b).expect("JSON is UTF-8")).map_err(|e| e.0)
}

/// `json` read by both codecs: both refuse it, or both read the same message.
fn same_reading(generated: &dyn MessageCodec, dynamic: &dyn MessageCodec, json: &str) {
    let a = generated.json_to_binary(json.as_bytes());
    let b = dynamic.json_to_binary(json.as_bytes());
    match (a, b) {
        // Binary encodings may differ in map order; the dynamic codec's printing of each
        // (keys in order) says whether they hold the same message.
        (Ok(a), Ok(b)) => assert_eq!(
            text(dynamic.binary_to_json(&a)),
            text(dynamic.binary_to_json(&b)),
            "{} read {json} differently",
            generated.type_name()
        ),
        (Err(_), Err(_)) => {}
        (a, b) => {
            panic!("{}: {json}: generated {:?}, dynamic {:?}", generated.type_name(), a.map(|_| ()), b.map(|_| ()))
        }
    }
}

#[test]
fn random_messages_print_the_same_bytes_both_ways() {
    let schema = schema();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    let table = MethodTable::generated();
    for generated in generated_codecs(&table) {
        let dynamic = schema.codec(generated.type_name()).expect("every generated type is in the descriptors");
        let desc = schema.pool().get_message_by_name(generated.type_name()).expect("described");
        for _ in 0..300 {
            let binary = random_message(&desc, &mut rng, 0).encode_to_vec();
            let expected = text(generated.binary_to_json(&binary));
            let actual = text(dynamic.binary_to_json(&binary));
            assert_eq!(actual.as_ref().map_err(|_| ()), expected.as_ref().map_err(|_| ()), "{}", generated.type_name());
            if let Ok(json) = expected {
                same_reading(generated, &dynamic, &json);
                compared += 1;
            }
        }
    }
    assert!(compared > 1000, "only {compared} messages compared");
}

#[test]
fn json_input_is_read_as_the_generated_codec_reads_it() {
    let schema = schema();
    let table = MethodTable::generated();
    let codecs = generated_codecs(&table);
    let generated = |name: &str| *codecs.iter().find(|c| c.type_name() == name).expect("a request or response type");
    let cases: &[(&str, &[&str])] = &[
        (
            "grpc.testing.SimpleRequest",
            &[
                "",
                " \n ",
                "{}",
                r#"{"responseSize": 3}"#,
                r#"{"response_size": 3}"#,
                r#"{"responseSize": "3"}"#,
                r#"{"responseSize": 1e2}"#,
                r#"{"responseSize": 100.0}"#,
                r#"{"responseSize": 1.5}"#,
                r#"{"responseSize": 2147483648}"#,
                r#"{"responseSize": -2147483648}"#,
                r#"{"responseSize": true}"#,
                r#"{"responseType": "COMPRESSABLE"}"#,
                r#"{"responseType": 0}"#,
                r#"{"responseType": "NOPE"}"#,
                r#"{"payload": {"body": "AAEC"}}"#,
                r#"{"payload": {"body": "-_8="}}"#,
                r#"{"payload": {"body": "AAE"}}"#,
                r#"{"payload": {"body": "!!"}}"#,
                r#"{"payload": null}"#,
                r#"{"payload": []}"#,
                r#"{"fillUsername": true, "fill_server_id": false}"#,
                r#"{"fillUsername": "true"}"#,
                r#"{"responseCompressed": {"value": true}}"#,
                r#"{"responseCompressed": true}"#,
                r#"{"unknownField": {"deep": [1, {"x": null}]}, "responseSize": 1}"#,
                r#"{"responseSize": 1, "responseSize": 2}"#,
                r#"{"responseSize": 1, "response_size": 2}"#,
                r#"{"responseStatus": {"code": 5, "message": "héllo \u00e9 \ud83d\ude00"}}"#,
                r#"{"orcaPerQueryReport": {"requestCost": {"a": 1, "b": "2.5", "c": "-1e3"}}}"#,
                r#"{"orcaPerQueryReport": {"utilization": {"a": "x"}}}"#,
                r#"{"orcaPerQueryReport": {"cpuUtilization": "NaN", "memoryUtilization": "-Infinity"}}"#,
                r#"{"orcaPerQueryReport": {"cpuUtilization": "nan"}}"#,
                "[]",
                "1",
                "null",
                r#""text""#,
                r#"{"responseSize": 1} trailing"#,
                r#"{"responseSize": 1"#,
                r#"{"responseSize": 1,}"#,
            ],
        ),
        (
            "portway.state.v1.PutRequest",
            &[
                r#"{"key": "a", "value": {"x": [1, 2.5, "s", true, {"y": {}}]}}"#,
                r#"{"key": "a", "value": 1}"#,
                r#"{"key": "a", "expectedRevision": "0"}"#,
                r#"{"key": "a", "expected_revision": 12}"#,
                r#"{"key": "a", "expectedRevision": "9223372036854775807"}"#,
                r#"{"key": "a", "expectedRevision": "9223372036854775808"}"#,
                r#"{"key": "a", "expectedRevision": "-1"}"#,
                r#"{"key": 1}"#,
            ],
        ),
        (
            "portway.state.v1.TxnRequest",
            &[
                r#"{"compare": [{"key": "a", "target": "VALUE", "operator": "EQUAL", "value": "x"}]}"#,
                r#"{"compare": [{"target": 1, "operator": "NOT_EQUAL"}]}"#,
                r#"{"success": [{"put": {"key": "a", "value": 1}}, {"get": {"key": "b"}}]}"#,
                r#"{"success": [{"put": {"key": "a"}, "delete": {"key": "a"}}]}"#,
                r#"{"success": [{"delete": {}}], "failure": [{"get": {}}]}"#,
                r#"{"success": {"put": {}}}"#,
                r#"{"success": [null]}"#,
            ],
        ),
    ];
    // `null` as a field's default, unknown enum numbers, `null` as a `Value`.
    let nulls: &[(&str, &[&str])] = &[
        (
            "grpc.testing.SimpleRequest",
            &[
                r#"{"responseSize": null}"#,
                r#"{"responseType": null}"#,
                r#"{"orcaPerQueryReport": {"requestCost": null}}"#,
                r#"{"responseSize": null, "responseSize": 4}"#,
                r#"{"responseType": 7}"#,
            ],
        ),
        ("portway.state.v1.PutRequest", &[r#"{"key": "a", "value": null}"#, r#"{"value": [null]}"#]),
    ];
    let cases = cases.iter().chain(nulls).copied();
    for (type_name, inputs) in cases {
        let dynamic = schema.codec(type_name).expect("described");
        for json in inputs {
            same_reading(generated(type_name), &dynamic, json);
        }
    }
}

#[test]
fn the_method_table_from_descriptors_matches_the_generated_one() {
    let schema = schema();
    let generated = MethodTable::generated();
    let mut from_descriptors = MethodTable::new();
    from_descriptors.extend(schema.methods());
    assert_eq!(from_descriptors.len(), generated.len());
    for g in generated.iter() {
        let d = from_descriptors.get(g.path()).expect("every generated method is described");
        assert_eq!(
            (d.service(), d.method(), d.kind(), d.idempotency()),
            (g.service(), g.method(), g.kind(), g.idempotency())
        );
        assert_eq!(d.request().type_name(), g.request().type_name());
        assert_eq!(d.response().type_name(), g.response().type_name());
    }
    // Generated entries win over described ones; described ones fill the gaps.
    let mut table = MethodTable::new();
    let health = "/grpc.health.v1.Health/Check";
    table.insert(generated.get(health).expect("generated").as_ref().clone());
    schema.extend_table(&mut table);
    assert_eq!(table.len(), generated.len());
    let kept = table.get(health).expect("kept").request() as *const dyn MessageCodec;
    let original = generated.get(health).expect("generated").request() as *const dyn MessageCodec;
    assert!(std::ptr::addr_eq(kept, original), "the generated codec was replaced");
}

#[test]
fn bad_descriptors_and_bad_binary_are_errors_not_panics() {
    assert!(Schema::decode(b"\xff\xff not a descriptor set").is_err());
    let codec = schema().codec("grpc.testing.SimpleRequest").expect("described");
    let err = codec.binary_to_json(b"\x0a\xff").unwrap_err();
    assert!(err.0.starts_with("invalid protobuf for grpc.testing.SimpleRequest"), "{err}");
    assert!(schema().codec("no.Such").is_none());
}

/// Whether messages of type `desc` can hold a map (or a `Struct`), at any depth.
fn has_map(desc: &MessageDescriptor, depth: usize) -> bool {
    depth < 8
        && (desc.full_name() == "google.protobuf.Struct"
            || desc.fields().any(|f| f.is_map() || matches!(f.kind(), Kind::Message(m) if has_map(&m, depth + 1))))
}

/// `binary`'s top-level fields, as (start, end) byte ranges.
fn fields(binary: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut buf = binary;
    while !buf.is_empty() {
        let start = binary.len() - buf.len();
        let (_, wire_type) = prost::encoding::decode_key(&mut buf).expect("a key");
        prost::encoding::skip_field(wire_type, 0, &mut buf, prost::encoding::DecodeContext::default())
            .expect("a field");
        out.push(start..binary.len() - buf.len());
    }
    out
}

#[test]
fn wire_input_as_any_encoder_writes_it_reads_as_prost_reads_it() {
    // Not prost's canonical output: fields in another order, a message given twice (merged:
    // scalars last, lists appended, messages merged, maps joined), unknown fields.
    let schema = schema();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let table = MethodTable::generated();
    let mut compared = 0;
    for generated in generated_codecs(&table) {
        let dynamic = schema.codec(generated.type_name()).expect("described");
        let desc = schema.pool().get_message_by_name(generated.type_name()).expect("described");
        for _ in 0..100 {
            let a = random_message(&desc, &mut rng, 0).encode_to_vec();
            let b = random_message(&desc, &mut rng, 0).encode_to_vec();
            let mut reversed = Vec::new();
            for range in fields(&a).into_iter().rev() {
                reversed.extend_from_slice(&a[range]);
            }
            let mut unknown = a.clone();
            unknown.extend_from_slice(&[0xb8, 0xf0, 0x04, 0x07, 0xc2, 0xf0, 0x04, 0x02, b'h', b'i']);
            let mut variants = vec![reversed, unknown];
            // Joined maps have several entries, which the generated path prints in hash order.
            if MAP_ENTRIES > 1 || !has_map(&desc, 0) {
                variants.push([a.clone(), b].concat());
            }
            for variant in variants {
                let expected = text(generated.binary_to_json(&variant));
                let actual = text(dynamic.binary_to_json(&variant));
                assert_eq!(
                    actual.as_ref().map_err(|_| ()),
                    expected.as_ref().map_err(|_| ()),
                    "{}",
                    generated.type_name()
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 500, "{compared}");
    // Not protobuf at all: both refuse it.
    let codec = schema.codec("grpc.testing.SimpleRequest").expect("described");
    for junk in [&b"\x0a\x05ab"[..], b"\x08", b"\x00\x01", b"\x0b\x0c", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"]
    {
        assert!(codec.binary_to_json(junk).is_err(), "{junk:?}");
    }
}
