use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::prost_types::{DescriptorProto, FileDescriptorProto};

use super::*;

#[test]
fn portway_own_descriptor_set_reads_whole() {
    let d = Descriptors::decode(crate::pb::FILE_DESCRIPTOR_SET).expect("decodes");
    assert!(d.services.contains(&"grpc.testing.TestService".to_string()), "{:?}", d.services);
    assert!(!d.services.iter().any(|s| OWN_SERVICES.contains(&s.as_str())));
    assert!(d.schema.codec("portway.state.v1.PutRequest").is_some());
}

#[test]
fn names_are_qualified_map_entries_named_and_optional_fields_marked_as_protoc_does() {
    use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
    use prost_reflect::prost_types::{FieldDescriptorProto, MessageOptions, OneofDescriptorProto};
    let field = |name: &str, number, r#type: Type, type_name: Option<&str>, oneof: Option<i32>| FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(if name == "counts" { Label::Repeated } else { Label::Optional } as i32),
        r#type: Some(r#type as i32),
        type_name: type_name.map(Into::into),
        oneof_index: oneof,
        ..Default::default()
    };
    // What protobufjs writes: relative names, a map entry named after the field, a
    // proto3 `optional` field whose oneof comes first and is not marked synthetic.
    let entry = DescriptorProto {
        name: Some("Counts".into()),
        field: vec![field("key", 1, Type::String, None, None), field("value", 2, Type::Message, Some("Msg"), None)],
        options: Some(MessageOptions { map_entry: Some(true), ..Default::default() }),
        ..Default::default()
    };
    let msg = DescriptorProto {
        name: Some("Msg".into()),
        field: vec![
            field("maybe", 1, Type::Int32, None, Some(0)),
            field("a", 2, Type::String, None, Some(1)),
            field("b", 3, Type::Message, Some("Msg"), Some(1)),
            field("counts", 4, Type::Message, Some("Counts"), None),
        ],
        nested_type: vec![entry],
        oneof_decl: vec![
            OneofDescriptorProto { name: Some("_maybe".into()), ..Default::default() },
            OneofDescriptorProto { name: Some("choice".into()), ..Default::default() },
        ],
        ..Default::default()
    };
    let file = FileDescriptorProto {
        name: Some("acme.proto".into()),
        package: Some("acme".into()),
        message_type: vec![msg],
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    let files = [("acme.proto".to_owned(), Bytes::from(file.encode_to_vec()))].into();
    let d = Descriptors::new(&[], files).expect("resolves");
    let fixed = FileDescriptorProto::decode(d.files["acme.proto"].as_ref()).expect("decodes");
    let m = &fixed.message_type[0];
    let names: Vec<_> = m.oneof_decl.iter().map(|o| o.name()).collect();
    assert_eq!(names, ["choice", "_maybe"]);
    assert_eq!((m.field[0].oneof_index, m.field[0].proto3_optional), (Some(1), Some(true)));
    assert_eq!(m.field[1].oneof_index, Some(0));
    assert_eq!(m.field[2].type_name(), ".acme.Msg");
    assert_eq!(m.field[3].type_name(), ".acme.Msg.CountsEntry");
    assert_eq!(m.nested_type[0].name(), "CountsEntry");
    assert_eq!(m.nested_type[0].field[1].type_name(), ".acme.Msg");
    assert!(d.schema.codec("acme.Msg").is_some());
}

#[test]
fn a_file_that_does_not_import_what_it_uses_gets_the_import() {
    use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
    use prost_reflect::prost_types::{FieldDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};
    let wkt = FileDescriptorProto {
        name: Some("google_protobuf.proto".into()),
        package: Some("google.protobuf".into()),
        message_type: vec![DescriptorProto { name: Some("Empty".into()), ..Default::default() }],
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    let api = FileDescriptorProto {
        name: Some("acme.proto".into()),
        package: Some("acme".into()),
        message_type: vec![DescriptorProto {
            name: Some("Req".into()),
            field: vec![FieldDescriptorProto {
                name: Some("e".into()),
                number: Some(1),
                label: Some(Label::Optional as i32),
                r#type: Some(Type::Message as i32),
                type_name: Some(".google.protobuf.Empty".into()),
                json_name: Some("e".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        service: vec![ServiceDescriptorProto {
            name: Some("Api".into()),
            method: vec![MethodDescriptorProto {
                name: Some("Call".into()),
                input_type: Some(".acme.Req".into()),
                output_type: Some(".google.protobuf.Empty".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    let files: BTreeMap<String, Bytes> =
        [&wkt, &api].iter().map(|f| (f.name().to_owned(), Bytes::from(f.encode_to_vec()))).collect();
    let d = Descriptors::new(&["acme.Api".into(), "grpc.health.v1.Health".into()], files).expect("resolves");
    assert_eq!(d.services, ["acme.Api"]);
    // The well-known types come from protobuf's own file, not from one named otherwise.
    let repaired = FileDescriptorProto::decode(d.files["acme.proto"].as_ref()).expect("decodes");
    assert_eq!(repaired.dependency, ["google/protobuf/empty.proto"]);
    assert!(!d.files.contains_key("google_protobuf.proto"));
    assert!(d.files.contains_key("google/protobuf/empty.proto"));
    let codec = d.schema.codec("acme.Req").expect("described");
    use crate::transcode::MessageCodec as _;
    assert_eq!(
        codec.binary_to_json(&codec.json_to_binary(br#"{"e": {}}"#).expect("reads")).expect("writes"),
        br#"{"e":{}}"#
    );
}
