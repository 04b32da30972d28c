//! Writing a dynamic message as canonical JSON, byte for byte as the generated impls write
//! the same message: fields in their order (see `plan`), defaults skipped, 64-bit integers
//! as strings, bytes as base64, enums by name (unknown numbers as numbers), map keys in
//! order, non-finite floats as strings, well-known types by the generated types' impls.

use std::collections::BTreeMap;

use base64::Engine as _;
use prost_reflect::{DynamicMessage, Kind, MapKey, ReflectMessage as _, Value};
use serde::ser::{Error as _, Serialize, SerializeMap, SerializeSeq, Serializer};

use super::plan::{Plans, Shape};
use super::shared::{WellKnown, serialize_well_known};

/// A message and the plans to write it by.
pub(super) struct MessageJson<'a> {
    pub(super) message: &'a DynamicMessage,
    pub(super) plans: &'a Plans,
}

impl Serialize for MessageJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let plan = self.plans.get(&self.message.descriptor());
        if let Some(wkt) = plan.well_known {
            return serialize_well_known(wkt, self.message, serializer);
        }
        let mut map = serializer.serialize_map(None)?;
        for f in &plan.fields {
            if !self.message.has_field(&f.field) {
                continue;
            }
            let value = self.message.get_field(&f.field);
            let plans = self.plans;
            match &f.shape {
                Shape::Singular(kind) => {
                    map.serialize_entry(&*f.json_name, &ValueJson { value: &value, kind, plans })?
                }
                Shape::List(kind) => map.serialize_entry(&*f.json_name, &ListJson { value: &value, kind, plans })?,
                Shape::Map(_, kind) => map.serialize_entry(&*f.json_name, &MapJson { value: &value, kind, plans })?,
            }
        }
        map.end()
    }
}

/// One singular value of a field (or list element, or map value) of `kind`.
struct ValueJson<'a> {
    value: &'a Value,
    kind: &'a Kind,
    plans: &'a Plans,
}

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Bool(v) => serializer.serialize_bool(*v),
            Value::I32(v) => serializer.serialize_i32(*v),
            Value::U32(v) => serializer.serialize_u32(*v),
            Value::I64(v) => serializer.collect_str(v),
            Value::U64(v) => serializer.collect_str(v),
            Value::F32(v) if v.is_finite() => serializer.serialize_f32(*v),
            Value::F64(v) if v.is_finite() => serializer.serialize_f64(*v),
            Value::F32(v) => serializer.serialize_str(non_finite(f64::from(*v))),
            Value::F64(v) => serializer.serialize_str(non_finite(*v)),
            Value::String(v) => serializer.serialize_str(v),
            Value::Bytes(v) => serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v)),
            Value::EnumNumber(n) => match self.kind {
                Kind::Enum(e) if e.full_name() == "google.protobuf.NullValue" => serializer.serialize_unit(),
                Kind::Enum(e) => match e.get_value(*n) {
                    Some(known) => serializer.serialize_str(known.name()),
                    None => serializer.serialize_i32(*n),
                },
                _ => Err(S::Error::custom("an enum value in a field that is not an enum")),
            },
            Value::Message(m) => MessageJson { message: m, plans: self.plans }.serialize(serializer),
            Value::List(_) | Value::Map(_) => Err(S::Error::custom("a list or map where a single value belongs")),
        }
    }
}

fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// A repeated field's values.
struct ListJson<'a> {
    value: &'a Value,
    kind: &'a Kind,
    plans: &'a Plans,
}

impl Serialize for ListJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::List(values) = self.value else {
            return Err(S::Error::custom("a single value where a list belongs"));
        };
        let mut seq = serializer.serialize_seq(Some(values.len()))?;
        for value in values {
            seq.serialize_element(&ValueJson { value, kind: self.kind, plans: self.plans })?;
        }
        seq.end()
    }
}

/// A map field's entries, keys in order (numerically for integer keys, `false` before
/// `true`, strings bytewise), as the generated code's `BTreeMap`s write them.
struct MapJson<'a> {
    value: &'a Value,
    kind: &'a Kind,
    plans: &'a Plans,
}

impl Serialize for MapJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Map(entries) = self.value else {
            return Err(S::Error::custom("a single value where a map belongs"));
        };
        let sorted: BTreeMap<&MapKey, &Value> = entries.iter().collect();
        let mut map = serializer.serialize_map(Some(sorted.len()))?;
        for (key, value) in sorted {
            let value = ValueJson { value, kind: self.kind, plans: self.plans };
            match key {
                MapKey::Bool(k) => map.serialize_entry(k, &value)?,
                MapKey::I32(k) => map.serialize_entry(k, &value)?,
                MapKey::I64(k) => map.serialize_entry(k, &value)?,
                MapKey::U32(k) => map.serialize_entry(k, &value)?,
                MapKey::U64(k) => map.serialize_entry(k, &value)?,
                MapKey::String(k) => map.serialize_entry(k, &value)?,
            }
        }
        map.end()
    }
}

/// Whether `kind` is a message type whose JSON `null` is a value (`google.protobuf.Value`).
pub(super) fn takes_null(kind: &Kind) -> bool {
    match kind {
        Kind::Message(m) => WellKnown::of(m.full_name()).is_some_and(WellKnown::takes_null),
        Kind::Enum(e) => e.full_name() == "google.protobuf.NullValue",
        _ => false,
    }
}
