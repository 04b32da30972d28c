//! The oracle's inputs: what the mapping allows in other spellings than portway writes, what it
//! refuses, and what portway refuses on purpose that the reference accepts.

/// Inputs the mapping allows that portway does not write: both must read each to the same message.
pub const ACCEPTED: &[(&str, &str)] = &[
    (
        "Scalars",
        r#"{"int32Field": 1e2, "int64Field": "1e2", "uint32Field": 100.0, "uint64Field": "18446744073709551615"}"#,
    ),
    (
        "Scalars",
        r#"{"sint32Field": -0, "sint64Field": "-0", "fixed32Field": 4.294967295e9, "sfixed64Field": -9.223372036854775808e18}"#,
    ),
    ("Scalars", r#"{"floatField": "1.5", "doubleField": "-Infinity", "color": 7, "bytesField": "3q2-7w"}"#),
    ("Scalars", r#"{"floatField": 1, "doubleField": "1e3", "color": 1, "bytesField": "3q2+7w"}"#),
    ("Scalars", r#"{"int32_field": 1, "snake_case_name_2": 3, "renamed": 4, "string_field": "\u00e9\ud83d\ude00"}"#),
    ("Scalars", r#"{"customName": 4, "snakeCaseName2": 3}"#),
    ("Scalars", r#"{"int32Field": null, "stringField": null, "bytesField": null, "color": null, "boolField": null}"#),
    (
        "Scalars",
        r#"{"int32Field": "-2147483648", "uint32Field": "4294967295", "doubleField": "NaN", "floatField": "Infinity"}"#,
    ),
    (
        "Repeated",
        r#"{"int32Field": null, "nested": null, "color": [1, 9, "COLOR_GREEN", -2], "int64Field": [1, "2", 3e0]}"#,
    ),
    ("Repeated", r#"{"bytesField": ["", "_w", "-_8", "+/8="], "floatField": ["NaN", 1, "-0"], "stringField": []}"#),
    ("Optionals", r#"{"int32Field": null, "color": null, "doubleField": null}"#),
    ("Optionals", r#"{"int32_field": 0, "color": "COLOR_UNSPECIFIED", "bytes_field": ""}"#),
    (
        "Maps",
        r#"{"stringToString": null, "int32ToInt32": {"-1": 1e0, "2": "3"}, "boolToColor": {"true": "COLOR_RED", "false": 5}}"#,
    ),
    (
        "Maps",
        r#"{"int64_to_int64": {"-9223372036854775808": "1"}, "uint64ToDouble": {"18446744073709551615": "-Infinity"}}"#,
    ),
    (
        "Maps",
        r#"{"stringToValue": {"a": null, "b": [null, {}]}, "sfixed64ToTimestamp": {"-5": "1970-01-01T00:00:00+01:00"}}"#,
    ),
    ("Oneofs", r#"{"stringChoice": null}"#),
    ("Oneofs", r#"{"valueChoice": null}"#),
    ("Oneofs", r#"{"nullChoice": null}"#),
    ("Oneofs", r#"{"int64_choice": 5}"#),
    ("Oneofs", r#"{"colorChoice": 100}"#),
    ("Oneofs", r#"{"nestedChoice": null, "stringChoice": "b"}"#),
    ("Nested", r#"{"child": {}, "children": [{}, {"name": "x"}]}"#),
    (
        "WellKnown",
        r#"{"timestamp": "1970-01-01T01:00:00.5+01:00", "duration": "-0.000000001s", "fieldMask": "a.bC,d"}"#,
    ),
    ("WellKnown", r#"{"timestamp": "2000-02-29T23:59:59.999999999-23:59", "duration": "1.5s", "fieldMask": ""}"#),
    (
        "WellKnown",
        r#"{"timestamp": null, "value": null, "int64Value": null, "structField": null, "optionalNull": null, "nullValue": null}"#,
    ),
    (
        "WellKnown",
        r#"{"int32Value": 1e2, "uint64Value": 1, "int64Value": "-1", "floatValue": "NaN", "bytesValue": "-_8"}"#,
    ),
    (
        "WellKnown",
        r#"{"structField": {"a": {"b": [1, 2.5, "x", null, true]}}, "values": [null, 1, "a"], "listValue": [[]]}"#,
    ),
    (
        "WellKnown",
        r#"{"value": 18446744073709551615, "values": [-9007199254740993], "durations": ["0s", "-5s", "0.1s"]}"#,
    ),
    ("WellKnown", r#"{"empty": {}, "optionalNull": "NULL_VALUE", "nullValue": 0}"#),
    ("WellKnown", r#"{"nullValue": 1, "optionalNull": 2}"#),
    ("WellKnown", r#"{"any": {"int32_field": 1e0, "@type": "type.googleapis.com/portway.testing.v1.Scalars"}}"#),
    ("WellKnown", r#"{"any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.5s"}}"#),
    ("WellKnown", r#"{"any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s", "x": 1}}"#),
    ("WellKnown", r#"{"any": {}, "anys": [{"@type": "example.com/x/portway.testing.v1.Nested", "name": "n"}]}"#),
    ("WellKnown", r#"{"any": null, "anys": [{"@type": "type.googleapis.com/google.protobuf.Empty"}]}"#),
];

/// Inputs the mapping refuses: both must refuse each.
pub const REFUSED: &[(&str, &str)] = &[
    ("Scalars", r#"{"int32Field": 1.5}"#),
    ("Scalars", r#"{"int32Field": "1.5"}"#),
    ("Scalars", r#"{"int32Field": 2147483648}"#),
    ("Scalars", r#"{"int32Field": -2147483649}"#),
    ("Scalars", r#"{"uint32Field": -1}"#),
    ("Scalars", r#"{"uint64Field": "18446744073709551616"}"#),
    ("Scalars", r#"{"int64Field": "9223372036854775808"}"#),
    ("Scalars", r#"{"int64Field": 1e19}"#),
    ("Scalars", r#"{"floatField": 1e39}"#),
    ("Scalars", r#"{"doubleField": "nan"}"#),
    ("Scalars", r#"{"doubleField": 1e400}"#),
    ("Scalars", r#"{"color": "COLOR_BLUE"}"#),
    ("Scalars", r#"{"color": 2147483648}"#),
    ("Scalars", r#"{"boolField": "true"}"#),
    ("Scalars", r#"{"boolField": 1}"#),
    ("Scalars", r#"{"stringField": 1}"#),
    ("Scalars", r#"{"int32Field": true}"#),
    ("Scalars", r#"{"int32Field": [1]}"#),
    ("Scalars", r#"{"int32Field": 1, "int32Field": 2}"#),
    ("Scalars", r#"{"int32Field": 1"#),
    ("Scalars", r#"{"int32Field": NaN}"#),
    ("Repeated", r#"{"int32Field": 1}"#),
    ("Repeated", r#"{"int32Field": [1.5]}"#),
    ("Repeated", r#"{"int32Field": [null]}"#),
    ("Repeated", r#"{"nested": [null]}"#),
    ("Maps", r#"{"int32ToInt32": {"x": 1}}"#),
    ("Maps", r#"{"int32ToInt32": {"1.5": 1}}"#),
    ("Maps", r#"{"boolToColor": {"yes": 1}}"#),
    ("Maps", r#"{"int32ToInt32": []}"#),
    ("Oneofs", r#"{"int64Choice": "1", "stringChoice": "a"}"#),
    ("WellKnown", r#"{"timestamp": "1970-01-01T00:00:00"}"#),
    ("WellKnown", r#"{"timestamp": "1970-01-01t00:00:00Z"}"#),
    ("WellKnown", r#"{"timestamp": "0000-12-31T00:00:00Z"}"#),
    ("WellKnown", r#"{"timestamp": "10000-01-01T00:00:00Z"}"#),
    ("WellKnown", r#"{"timestamp": "1970-01-01T00:00:00.1234567890Z"}"#),
    ("WellKnown", r#"{"timestamp": 0}"#),
    ("WellKnown", r#"{"duration": "1"}"#),
    ("WellKnown", r#"{"duration": "315576000001s"}"#),
    ("WellKnown", r#"{"fieldMask": "a_b"}"#),
    ("WellKnown", r#"{"fieldMask": ["a"]}"#),
    ("WellKnown", r#"{"structField": {"a": 1, "a": 2}}"#),
    ("WellKnown", r#"{"structField": []}"#),
    ("WellKnown", r#"{"listValue": {}}"#),
    ("WellKnown", r#"{"int32Value": "x"}"#),
    ("WellKnown", r#"{"int32Value": {"value": 1}}"#),
    ("WellKnown", r#"{"any": {"@type": "type.googleapis.com/unknown.v1.Type"}}"#),
    ("WellKnown", r#"{"any": {"int32Field": 1}}"#),
    ("WellKnown", r#"{"any": {"@type": "type.googleapis.com/google.protobuf.Duration"}}"#),
    ("WellKnown", r#"{"any": {"@type": 1}}"#),
    ("WellKnown", r#"{"any": {"@type": "type.googleapis.com/portway.testing.v1.Scalars", "int32Field": 1.5}}"#),
];

/// Inputs portway refuses on purpose that this reference implementation (Python's) accepts,
/// each with the reason; the test checks that portway refuses them and that the reference
/// still accepts them (when it stops, they move to [`REFUSED`]).
pub const STRICTER: &[(&str, &str, &str)] = &[
    (
        "Scalars",
        r#"{"floatField": "-1e39"}"#,
        "out of a float's range; the reference refuses the number -1e39 but takes the string as -infinity",
    ),
    (
        "Scalars",
        r#"{"doubleField": "infinity"}"#,
        "the mapping's spellings are \"Infinity\", \"-Infinity\", \"NaN\"; the reference takes any Python float()",
    ),
    (
        "Scalars",
        r#"{"bytesField": "!!!!"}"#,
        "not base64; the reference's decoder drops characters outside the alphabet and reads empty bytes",
    ),
    (
        "Scalars",
        r#"{"int32Field": 1, "int32_field": 2}"#,
        "one field given twice (under its two names); the reference keeps the last",
    ),
    ("Scalars", r#"[]"#, "a message is a JSON object; the reference reads an empty array as the empty message"),
    (
        "WellKnown",
        r#"{"duration": "1.0000000001s"}"#,
        "a duration has at most 9 fractional digits (nanoseconds); the reference drops the tenth",
    ),
];
