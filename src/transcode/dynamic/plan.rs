//! Every message type's JSON plan, computed once per descriptor pool: its fields in the order
//! the generated code writes them, their JSON names, their wire shape, and the plans of the
//! message types they hold (by index, so that reading and writing never look a type up by
//! name).
//!
//! The generated (pbjson) impls write the fields outside any oneof in declaration order (a
//! proto3 `optional` field counts as outside: its oneof is synthetic), then each oneof's set
//! member, oneofs in declaration order; the codec writes them in that order too.

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use super::shared::WellKnown;

/// What a value is, on the wire and in JSON.
#[derive(Debug, Clone)]
pub(super) enum Scalar {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    Enum(EnumDescriptor),
    /// A message, by its plan's index.
    Message(usize),
}

impl Scalar {
    /// Whether a repeated field of this type may be packed (numbers, bools, enums).
    pub(super) fn packable(&self) -> bool {
        !matches!(self, Self::String | Self::Bytes | Self::Message(_))
    }

    /// Whether JSON `null` is a value of this type (`google.protobuf.Value`, `NullValue`).
    pub(super) fn takes_null(&self, plans: &Plans) -> bool {
        match self {
            Self::Message(i) => plans.get(*i).well_known.is_some_and(WellKnown::takes_null),
            Self::Enum(e) => e.full_name() == "google.protobuf.NullValue",
            _ => false,
        }
    }
}

/// A field's shape.
#[derive(Debug, Clone)]
pub(super) enum Shape {
    Singular(Scalar),
    List(Scalar),
    /// Key type, value type.
    Map(Scalar, Scalar),
}

/// How a field's value is written and read.
#[derive(Debug, Clone)]
pub(super) struct FieldPlan {
    pub(super) number: u32,
    /// The name it is written under (lowerCamelCase, or the declared `json_name`).
    pub(super) json_name: Box<str>,
    pub(super) shape: Shape,
    /// Whether it is written even with its default value (explicit presence: messages,
    /// `optional`, oneof members, proto2).
    pub(super) presence: bool,
    /// Whether a repeated field is written packed.
    pub(super) packed: bool,
    /// The oneof (not a synthetic one) it belongs to: its index in the message.
    pub(super) oneof: Option<usize>,
}

/// One message type's plan.
#[derive(Debug)]
pub(super) struct MessagePlan {
    pub(super) full_name: Box<str>,
    pub(super) well_known: Option<WellKnown>,
    /// In the order they are written.
    pub(super) fields: Vec<FieldPlan>,
    /// Every name a JSON object may use for a field (its JSON name and its proto name),
    /// to the field's index in `fields`.
    by_name: HashMap<Box<str>, usize>,
    /// Field number → index in `fields`, for numbers below `DENSE`; `u32::MAX`: none.
    by_number: Vec<u32>,
    /// The rest.
    by_large_number: HashMap<u32, usize>,
    /// How many real oneofs the message has.
    pub(super) oneofs: usize,
}

/// Field numbers below this are looked up in a table, the others in a map.
const DENSE: u32 = 256;

impl MessagePlan {
    /// The field a JSON key names.
    pub(super) fn field_named(&self, name: &str) -> Option<usize> {
        // Few fields: comparing beats hashing.
        if self.fields.len() <= 12 {
            return self.fields.iter().position(|f| &*f.json_name == name).or_else(|| self.by_name.get(name).copied());
        }
        self.by_name.get(name).copied()
    }

    /// The field with wire number `number`.
    pub(super) fn field_numbered(&self, number: u32) -> Option<usize> {
        match self.by_number.get(number as usize) {
            Some(&i) if i != u32::MAX => Some(i as usize),
            Some(_) => None,
            None => self.by_large_number.get(&number).copied(),
        }
    }
}

/// The plans of every message type of one descriptor pool.
#[derive(Debug, Default)]
pub(super) struct Plans {
    plans: Vec<MessagePlan>,
    by_type: HashMap<Box<str>, usize>,
}

impl Plans {
    /// Plans for every message type in `pool`.
    pub(super) fn new(pool: &DescriptorPool) -> Self {
        let messages: Vec<MessageDescriptor> = pool.all_messages().collect();
        let by_type: HashMap<Box<str>, usize> =
            messages.iter().enumerate().map(|(i, m)| (Box::from(m.full_name()), i)).collect();
        let plans = messages.iter().map(|m| plan(m, &by_type)).collect();
        Self { plans, by_type }
    }

    /// The index of the plan of message type `full_name`.
    pub(super) fn index(&self, full_name: &str) -> Option<usize> {
        self.by_type.get(full_name).copied()
    }

    pub(super) fn get(&self, index: usize) -> &MessagePlan {
        &self.plans[index]
    }
}

fn scalar(kind: Kind, by_type: &HashMap<Box<str>, usize>) -> Scalar {
    match kind {
        Kind::Double => Scalar::Double,
        Kind::Float => Scalar::Float,
        Kind::Int32 => Scalar::Int32,
        Kind::Int64 => Scalar::Int64,
        Kind::Uint32 => Scalar::Uint32,
        Kind::Uint64 => Scalar::Uint64,
        Kind::Sint32 => Scalar::Sint32,
        Kind::Sint64 => Scalar::Sint64,
        Kind::Fixed32 => Scalar::Fixed32,
        Kind::Fixed64 => Scalar::Fixed64,
        Kind::Sfixed32 => Scalar::Sfixed32,
        Kind::Sfixed64 => Scalar::Sfixed64,
        Kind::Bool => Scalar::Bool,
        Kind::String => Scalar::String,
        Kind::Bytes => Scalar::Bytes,
        Kind::Enum(e) => Scalar::Enum(e),
        // Every message of a pool has a plan in it.
        Kind::Message(m) => Scalar::Message(by_type.get(m.full_name()).copied().unwrap_or_default()),
    }
}

fn plan(desc: &MessageDescriptor, by_type: &HashMap<Box<str>, usize>) -> MessagePlan {
    let proto = desc.descriptor_proto();
    // Declaration order: the order of the fields in the descriptor.
    let declared: Vec<FieldPlan> = proto
        .field
        .iter()
        .filter_map(|f| desc.get_field(f.number() as u32))
        .map(|f| field_plan(desc, &f, by_type))
        .collect();
    let mut fields: Vec<FieldPlan> = declared.iter().filter(|f| f.oneof.is_none()).cloned().collect();
    let oneofs = desc.oneofs().len();
    for index in 0..oneofs {
        fields.extend(declared.iter().filter(|f| f.oneof == Some(index)).cloned());
    }
    let mut by_name = HashMap::new();
    let mut by_number = vec![u32::MAX; fields.iter().map(|f| f.number + 1).max().unwrap_or(0).min(DENSE) as usize];
    let mut by_large_number = HashMap::new();
    for (i, f) in fields.iter().enumerate() {
        let name = desc.get_field(f.number).map(|d| d.name().to_owned()).unwrap_or_default();
        by_name.insert(Box::from(name.as_str()), i);
        by_name.insert(f.json_name.clone(), i);
        match by_number.get_mut(f.number as usize) {
            Some(slot) => *slot = i as u32,
            None => {
                by_large_number.insert(f.number, i);
            }
        }
    }
    MessagePlan {
        full_name: desc.full_name().into(),
        well_known: WellKnown::of(desc.full_name()),
        fields,
        by_name,
        by_number,
        by_large_number,
        oneofs,
    }
}

fn field_plan(desc: &MessageDescriptor, field: &FieldDescriptor, by_type: &HashMap<Box<str>, usize>) -> FieldPlan {
    let shape = match field.kind() {
        Kind::Message(entry) if field.is_map() => Shape::Map(
            scalar(entry.map_entry_key_field().kind(), by_type),
            scalar(entry.map_entry_value_field().kind(), by_type),
        ),
        kind if field.is_list() => Shape::List(scalar(kind, by_type)),
        kind => Shape::Singular(scalar(kind, by_type)),
    };
    // The oneof's index among the message's oneofs (synthetic ones, of proto3 `optional`
    // fields, do not count: such a field is written like any other).
    let oneof = field
        .containing_oneof()
        .filter(|o| !o.is_synthetic())
        .and_then(|o| desc.oneofs().position(|other| other.name() == o.name()));
    FieldPlan {
        number: field.number(),
        json_name: field.json_name().into(),
        presence: field.supports_presence(),
        packed: field.is_packed(),
        oneof,
        shape,
    }
}
