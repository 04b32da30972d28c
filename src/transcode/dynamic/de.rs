//! Reading canonical JSON into a dynamic message, by the rules the generated impls follow:
//! either field name accepted (the JSON name or the proto name), unknown fields ignored,
//! `null` for the field's default (except where `null` is a value: `google.protobuf.Value`
//! and `NullValue`), a field or oneof given twice refused, numbers and bytes read by the
//! generated code's own readers, well-known types by the generated types' impls.

use std::collections::HashMap;
use std::fmt;

use prost_reflect::{DynamicMessage, EnumDescriptor, Kind, MapKey, MessageDescriptor, Value};
use serde::Deserialize;
use serde::de::value::{StrDeserializer, UnitDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::plan::{Plans, Shape};
use super::ser::takes_null;
use super::shared::{BytesDeserialize, NumberDeserialize, deserialize_well_known};

/// Reads one message of type `desc`.
pub(super) struct MessageSeed<'a> {
    pub(super) desc: &'a MessageDescriptor,
    pub(super) plans: &'a Plans,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = DynamicMessage;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<DynamicMessage, D::Error> {
        let plan = self.plans.get(self.desc);
        if let Some(wkt) = plan.well_known {
            return deserialize_well_known(wkt, self.desc, deserializer);
        }
        deserializer.deserialize_map(MessageVisitor { seed: self })
    }
}

struct MessageVisitor<'a> {
    seed: MessageSeed<'a>,
}

impl<'de> Visitor<'de> for MessageVisitor<'_> {
    type Value = DynamicMessage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "struct {}", self.seed.desc.full_name())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DynamicMessage, A::Error> {
        let plans = self.seed.plans;
        let plan = plans.get(self.seed.desc);
        let mut message = DynamicMessage::new(self.seed.desc.clone());
        // Which fields, and which oneofs, were given a value (not `null`) already.
        let mut seen = vec![false; plan.fields.len()];
        let mut oneof_seen: Vec<bool> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed { by_name: &plan.by_name })? {
            let Some(index) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let f = &plan.fields[index];
            let duplicate = seen[index] || f.oneof.is_some_and(|o| oneof_seen.get(o).copied().unwrap_or(false));
            if duplicate {
                // serde's `duplicate_field` wants a `&'static str`; these names are not.
                return Err(de::Error::custom(format_args!("duplicate field `{}`", f.json_name)));
            }
            let value = map.next_value_seed(FieldSeed { shape: &f.shape, plans })?;
            let Some(value) = value else {
                continue;
            };
            seen[index] = true;
            if let Some(o) = f.oneof {
                if oneof_seen.len() <= o {
                    oneof_seen.resize(o + 1, false);
                }
                oneof_seen[o] = true;
            }
            message.try_set_field(&f.field, value).map_err(de::Error::custom)?;
        }
        Ok(message)
    }
}

/// A field name: the index of the field it names, or `None` for an unknown one.
struct KeySeed<'a> {
    by_name: &'a HashMap<Box<str>, usize>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.by_name.get(v).copied())
    }
}

/// A field's value: `None` where JSON gave `null` for a field whose type has no `null`.
struct FieldSeed<'a> {
    shape: &'a Shape,
    plans: &'a Plans,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Value>, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field value or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<Value>, E> {
        match self.shape {
            // A type that has `null` as a value takes it; for every other, `null` is the default.
            Shape::Singular(kind) if takes_null(kind) => {
                ValueSeed { kind, plans: self.plans }.deserialize(UnitDeserializer::<E>::new()).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        let plans = self.plans;
        match self.shape {
            Shape::Singular(kind) => ValueSeed { kind, plans }.deserialize(d),
            Shape::List(kind) => d.deserialize_seq(ListVisitor { kind, plans }),
            Shape::Map(key, value) => d.deserialize_map(MapVisitor { key, value, plans }),
        }
        .map(Some)
    }
}

/// One value of `kind` (a singular field, a list element or a map value).
struct ValueSeed<'a> {
    kind: &'a Kind,
    plans: &'a Plans,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Ok(match self.kind {
            Kind::Double => Value::F64(NumberDeserialize::<f64>::deserialize(d)?.0),
            Kind::Float => Value::F32(NumberDeserialize::<f32>::deserialize(d)?.0),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(NumberDeserialize::<i32>::deserialize(d)?.0),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(NumberDeserialize::<i64>::deserialize(d)?.0),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(NumberDeserialize::<u32>::deserialize(d)?.0),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(NumberDeserialize::<u64>::deserialize(d)?.0),
            Kind::Bool => Value::Bool(bool::deserialize(d)?),
            Kind::String => Value::String(String::deserialize(d)?),
            Kind::Bytes => Value::Bytes(BytesDeserialize::<prost::bytes::Bytes>::deserialize(d)?.0),
            Kind::Enum(e) => Value::EnumNumber(d.deserialize_any(EnumVisitor { desc: e })?),
            Kind::Message(m) => Value::Message(MessageSeed { desc: m, plans: self.plans }.deserialize(d)?),
        })
    }
}

/// An enum value: a known value's name, or any number (proto3 enums are open).
struct EnumVisitor<'a> {
    desc: &'a EnumDescriptor,
}

impl<'de> Visitor<'de> for EnumVisitor<'_> {
    type Value = i32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an enum value's name or number ({})", self.desc.name())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
        self.desc
            .get_value_by_name(v)
            .map(|value| value.number())
            .ok_or_else(|| E::custom(format_args!("unknown variant `{v}` of enum {}", self.desc.full_name())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i32, E> {
        // `1.0` or `1e0` is the number 1, as for integer fields.
        let in_range = v.fract() == 0.0 && v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX);
        in_range.then_some(v as i32).ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<i32, E> {
        // `null` is the one value of `google.protobuf.NullValue`.
        if self.desc.full_name() == "google.protobuf.NullValue" {
            Ok(0)
        } else {
            Err(E::invalid_type(de::Unexpected::Unit, &self))
        }
    }
}

/// A repeated field's elements.
struct ListVisitor<'a> {
    kind: &'a Kind,
    plans: &'a Plans,
}

impl<'de> Visitor<'de> for ListVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(ValueSeed { kind: self.kind, plans: self.plans })? {
            values.push(v);
        }
        Ok(Value::List(values))
    }
}

/// A map field's entries; keys are JSON strings, read by the key type's rules.
struct MapVisitor<'a> {
    key: &'a Kind,
    value: &'a Kind,
    plans: &'a Plans,
}

impl<'de> Visitor<'de> for MapVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = HashMap::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(key) = map.next_key::<String>()? {
            let key = map_key::<A::Error>(self.key, &key)?;
            let value = map.next_value_seed(ValueSeed { kind: self.value, plans: self.plans })?;
            entries.insert(key, value);
        }
        Ok(Value::Map(entries))
    }
}

fn map_key<E: de::Error>(kind: &Kind, key: &str) -> Result<MapKey, E> {
    let d = || -> StrDeserializer<'_, E> { key.into_deserializer() };
    Ok(match kind {
        Kind::String => MapKey::String(key.to_owned()),
        Kind::Bool => match key {
            "true" => MapKey::Bool(true),
            "false" => MapKey::Bool(false),
            _ => return Err(E::invalid_value(de::Unexpected::Str(key), &"true or false")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(NumberDeserialize::<i32>::deserialize(d())?.0),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(NumberDeserialize::<i64>::deserialize(d())?.0),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(NumberDeserialize::<u32>::deserialize(d())?.0),
        Kind::Uint64 | Kind::Fixed64 => MapKey::U64(NumberDeserialize::<u64>::deserialize(d())?.0),
        _ => return Err(E::custom("a map key of a type protobuf does not allow")),
    })
}
