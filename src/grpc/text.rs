//! The one text check of every request (DESIGN §4): every string field, found by walking the request against the served descriptors, is refused when it holds a control character or a bidirectional override.
//!
//! The walk is generic on purpose: a string field added to any request
//! message later is checked without anyone remembering to. It runs in
//! `grpc::start`, before the use case, so a refused call has looked nothing
//! up and stored nothing, and answers alike whatever the names it carries
//! point at. Which fields may keep `\n` and `\t` is decided once, in
//! [`crate::domain::LONG_TEXT_FIELDS`]. The per-field checks of the use cases
//! stay (lengths, presence, formats); this check only makes sure that no
//! string slips past them.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};

use crate::domain::{text_fault, text_kind};
use crate::error::{Error, FieldViolation};

/// The served descriptor set, decoded once.
static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .expect("the embedded descriptor set decodes")
});

/// The input message of every cadrex RPC, by its path
/// (`/cadrex.v1.CadreService/GetCadre`).
static INPUTS: LazyLock<HashMap<String, MessageDescriptor>> = LazyLock::new(|| {
    POOL.services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .map(|m| {
            let path = format!("/{}/{}", m.parent_service().full_name(), m.name());
            (path, m.input())
        })
        .collect()
});

/// Refuses `request` of `method` when any string field in it, at any depth
/// (nested and repeated messages, `oneof` members), holds a character
/// [`text_fault`] refuses for its kind: INVALID_ARGUMENT with one `BadRequest`
/// violation per such field, named by its path in the request
/// (`record.source_record_id`, `cadre.posts[0].unit_name`).
///
/// A method the descriptors do not know is an internal error: the check must
/// not be skipped silently.
pub fn check<T: Message>(method: &str, request: &T) -> Result<(), Error> {
    let Some(desc) = INPUTS.get(method) else {
        return Err(Error::internal(anyhow::anyhow!(
            "no descriptor for the input of {method}"
        )));
    };
    let encoded = request.encode_to_vec();
    let message = DynamicMessage::decode(desc.clone(), encoded.as_slice()).map_err(|e| {
        Error::internal(anyhow::anyhow!(
            "a decoded {method} request does not decode again: {e}"
        ))
    })?;
    let mut violations = Vec::new();
    walk(&message, &mut String::new(), &mut violations);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument { violations })
    }
}

/// Collects a violation for every refused string under `message`, whose path
/// in the request is `path`.
fn walk(message: &DynamicMessage, path: &mut String, out: &mut Vec<FieldViolation>) {
    for (field, value) in message.fields() {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(field.name());
        let kind = text_kind(field.full_name());
        match value {
            Value::String(s) => check_one(s, kind, path, out),
            Value::Message(m) => walk(m, path, out),
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = path.len();
                    path.push_str(&format!("[{i}]"));
                    match item {
                        Value::String(s) => check_one(s, kind, path, out),
                        Value::Message(m) => walk(m, path, out),
                        _ => {}
                    }
                    path.truncate(at);
                }
            }
            Value::Map(entries) => {
                for (key, item) in entries {
                    let at = path.len();
                    path.push_str(&format!("[{key:?}]"));
                    match item {
                        Value::String(s) => check_one(s, kind, path, out),
                        Value::Message(m) => walk(m, path, out),
                        _ => {}
                    }
                    path.truncate(at);
                }
            }
            _ => {}
        }
        path.truncate(len);
    }
}

fn check_one(s: &str, kind: crate::domain::Text, path: &str, out: &mut Vec<FieldViolation>) {
    if let Some(why) = text_fault(s, kind) {
        out.push(FieldViolation::new(path, why));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::{M_CREATE_CADRE, M_SUBMIT_RECORD, METHODS};
    use crate::proto;

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument { violations } => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn every_method_has_an_input_descriptor() {
        for m in METHODS {
            assert!(INPUTS.contains_key(m.path), "{}", m.path);
        }
    }

    #[test]
    fn long_text_fields_exist() {
        for name in crate::domain::LONG_TEXT_FIELDS {
            let (message, field) = name.rsplit_once('.').unwrap();
            let desc = POOL
                .get_message_by_name(message)
                .unwrap_or_else(|| panic!("{message} is not in the descriptors"));
            assert!(
                desc.get_field_by_name(field)
                    .is_some_and(|f| f.kind() == prost_reflect::Kind::String),
                "{name} is not a string field"
            );
        }
    }

    #[test]
    fn paths_name_nested_repeated_and_oneof_fields() {
        let mut cadre = proto::Cadre {
            display_name: "张三".into(),
            posts: vec![proto::Post::default(), proto::Post::default()],
            ..Default::default()
        };
        cadre.posts[1].unit_name = "某县\u{202E}局".into();
        let req = proto::CreateCadreRequest {
            cadre: Some(cadre),
            request_id: "r\u{7f}".into(),
        };
        assert_eq!(
            fields(check(M_CREATE_CADRE, &req).unwrap_err()),
            ["cadre.posts[1].unit_name", "request_id"]
        );
        let clue = |conclusion: &str| proto::SubmitRecordRequest {
            record: Some(proto::Record {
                source_record_id: "XS-1".into(),
                payload: Some(proto::record::Payload::Clue(proto::Clue {
                    conclusion: conclusion.into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(check(M_SUBMIT_RECORD, &clue("一、\t属实\n二、了结")).is_ok());
        assert_eq!(
            fields(check(M_SUBMIT_RECORD, &clue("属实\r")).unwrap_err()),
            ["record.clue.conclusion"]
        );
        assert!(check(M_SUBMIT_RECORD, &proto::SubmitRecordRequest::default()).is_ok());
        assert!(check("/cadrex.v1.Nope/Nope", &proto::GetCadreRequest::default()).is_err());
    }
}
