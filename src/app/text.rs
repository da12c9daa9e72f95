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

use std::fmt::Write as _;

use prost::Message;
use prost::encoding::{WireType, decode_key, decode_varint};
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};

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

/// The item field of every batch method, by its path: a top-level repeated
/// field of the input whose elements are themselves the input of another
/// method (`BatchSubmitRecordsRequest.requests`, each a
/// `SubmitRecordRequest`). A batch answers for each item on its own (one
/// refused item does not refuse the others, nor the call), so its items are
/// checked one by one by the use case, with [`check_item`].
static ITEMS: LazyLock<HashMap<String, prost_reflect::FieldDescriptor>> = LazyLock::new(|| {
    let inputs: Vec<&MessageDescriptor> = INPUTS.values().collect();
    INPUTS
        .iter()
        .filter_map(|(path, desc)| {
            desc.fields()
                .find(|f| {
                    f.is_list() && matches!(f.kind(), Kind::Message(m) if inputs.contains(&&m))
                })
                .map(|f| (path.clone(), f))
        })
        .collect()
});

/// The name of the item field of batch method `method` (see [`ITEMS`]), or
/// `None` for a method that is not a batch.
pub fn item_field(method: &str) -> Option<&'static str> {
    ITEMS.get(method).map(|f| f.name())
}

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
    // Walking the encoded bytes against the descriptor reads every string in
    // place; decoding into a `DynamicMessage` first cost ten times more.
    // A batch's items are its use case's to check, item by item.
    let skip = ITEMS.get(method).map(|f| f.number());
    walk_message(method, desc, request, skip, "")
}

/// Refuses one item of batch method `method` as [`check`] refuses a whole
/// request, as the item's own refusal (the use case answers it for that item
/// alone), with paths within the item after `prefix` (the use case's own
/// prefix for the item's violations: `requests[3]`, or none).
pub fn check_item<T: Message>(method: &str, item: &T, prefix: &str) -> Result<(), Error> {
    let Some(field) = ITEMS.get(method) else {
        return Err(Error::internal(anyhow::anyhow!("{method} is not a batch")));
    };
    let Kind::Message(desc) = field.kind() else {
        return Err(Error::internal(anyhow::anyhow!(
            "{method} items are not messages"
        )));
    };
    walk_message(method, &desc, item, None, prefix)
}

/// Walks `message` of type `desc`, leaving out top-level field `skip`, its
/// paths after `prefix`.
fn walk_message<T: Message>(
    method: &str,
    desc: &MessageDescriptor,
    message: &T,
    skip: Option<u32>,
    prefix: &str,
) -> Result<(), Error> {
    let encoded = message.encode_to_vec();
    let mut violations = Vec::new();
    walk(
        desc,
        &encoded,
        skip,
        &mut prefix.to_string(),
        &mut violations,
    )
    .map_err(|why| {
        Error::internal(anyhow::anyhow!(
            "a decoded {method} request does not walk: {why}"
        ))
    })?;
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument { violations })
    }
}

/// Whether the UTF-8 `bytes` hold a byte that can begin a character
/// [`text_fault`] refuses: an ASCII control (below 0x20, or 0x7F), the lead
/// byte 0xC2 of U+0080–U+009F, or the lead byte 0xE2 of U+202A–U+202E and
/// U+2066–U+2069. Most strings hold none, and skip the character walk.
fn may_fail(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|&b| b < 0x20 || b == 0x7F || b == 0xC2 || b == 0xE2)
}

/// Collects a violation for every refused string in the encoded message
/// `buf` of type `desc`, whose path in the request is `path`. Fields the
/// descriptor does not know, and values that are neither strings nor
/// messages, are skipped; a repeated field's elements are numbered in the
/// order they occur, as the decoded message holds them.
fn walk(
    desc: &MessageDescriptor,
    mut buf: &[u8],
    skip: Option<u32>,
    path: &mut String,
    out: &mut Vec<FieldViolation>,
) -> Result<(), &'static str> {
    let mut occurrences: Vec<(u32, usize)> = Vec::new();
    while !buf.is_empty() {
        let (number, wire) = decode_key(&mut buf).map_err(|_| "bad key")?;
        let value = match wire {
            WireType::Varint => {
                decode_varint(&mut buf).map_err(|_| "bad varint")?;
                continue;
            }
            WireType::SixtyFourBit => {
                buf = buf.get(8..).ok_or("truncated")?;
                continue;
            }
            WireType::ThirtyTwoBit => {
                buf = buf.get(4..).ok_or("truncated")?;
                continue;
            }
            WireType::StartGroup | WireType::EndGroup => return Err("groups"),
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut buf).map_err(|_| "bad length")?)
                    .map_err(|_| "bad length")?;
                let value = buf.get(..len).ok_or("truncated")?;
                buf = &buf[len..];
                value
            }
        };
        let Some(field) = desc.get_field(number).filter(|_| skip != Some(number)) else {
            continue;
        };
        let kind = field.kind();
        if !matches!(kind, Kind::String | Kind::Message(_)) {
            continue;
        }
        let at = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(field.name());
        if field.is_list() || field.is_map() {
            let n = match occurrences.iter_mut().find(|(f, _)| *f == number) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    occurrences.push((number, 0));
                    0
                }
            };
            let _ = write!(path, "[{n}]");
        }
        match kind {
            Kind::String if may_fail(value) => {
                let s = std::str::from_utf8(value).map_err(|_| "not UTF-8")?;
                if let Some(why) = text_fault(s, text_kind(field.full_name())) {
                    out.push(FieldViolation::new(path.as_str(), why));
                }
            }
            Kind::Message(inner) => walk(&inner, value, None, path, out)?,
            _ => {}
        }
        path.truncate(at);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    const M_CREATE_CADRE: &str = "/cadrex.v1.CadreService/CreateCadre";
    const M_SUBMIT_RECORD: &str = "/cadrex.v1.RecordService/SubmitRecord";
    const M_BATCH_SUBMIT_RECORDS: &str = "/cadrex.v1.RecordService/BatchSubmitRecords";
    const M_GET_CADRE_DOSSIER: &str = "/cadrex.v1.DossierService/GetCadreDossier";
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
    fn batch_items_are_found_from_the_descriptors() {
        assert_eq!(item_field(M_BATCH_SUBMIT_RECORDS), Some("requests"));
        assert_eq!(
            item_field("/cadrex.v1.CadreService/BatchCreateCadres"),
            Some("requests")
        );
        assert_eq!(item_field(M_SUBMIT_RECORD), None);
        let item = |sid: &str| proto::SubmitRecordRequest {
            record: Some(proto::Record {
                source_record_id: sid.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let batch = proto::BatchSubmitRecordsRequest {
            requests: vec![item("ok"), item("X\u{202E}1")],
            request_id: "b\u{1}".into(),
            validate_only: false,
        };
        assert_eq!(
            fields(check(M_BATCH_SUBMIT_RECORDS, &batch).unwrap_err()),
            ["request_id"],
            "items are left to the use case"
        );
        assert!(check_item(M_BATCH_SUBMIT_RECORDS, &batch.requests[0], "").is_ok());
        assert_eq!(
            fields(check_item(M_BATCH_SUBMIT_RECORDS, &batch.requests[1], "").unwrap_err()),
            ["record.source_record_id"]
        );
        assert_eq!(
            fields(
                check_item(M_BATCH_SUBMIT_RECORDS, &batch.requests[1], "requests[1]").unwrap_err()
            ),
            ["requests[1].record.source_record_id"]
        );
        assert!(check_item(M_SUBMIT_RECORD, &batch.requests[0], "").is_err());
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

    /// What the check costs per call, next to what decoding the same request
    /// with prost (which tonic has already done) costs (BENCHMARKS.md):
    /// `cargo nextest run --lib -E 'test(text_check_cost)' --run-ignored only --no-capture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn text_check_cost() {
        use std::time::Instant;
        fn time<T: Message + Default>(label: &str, method: &str, request: &T, rounds: u32) {
            let encoded = request.encode_to_vec();
            let started = Instant::now();
            for _ in 0..rounds {
                check(method, request).unwrap();
            }
            let checked = started.elapsed() / rounds;
            let started = Instant::now();
            for _ in 0..rounds {
                T::decode(encoded.as_slice()).unwrap();
            }
            let decoded = started.elapsed() / rounds;
            eprintln!(
                "{label} ({} bytes): check {checked:?} per call, prost decode {decoded:?}",
                encoded.len()
            );
        }
        let dossier = proto::GetCadreDossierRequest {
            cadre: "cadres/3f2a9c4e-1b7d-4e8a-9c0f-2d6b8e1a4c7f".into(),
            purpose: proto::Purpose::AppointmentVetting as i32,
            opinion_request: "opinionRequests/7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f".into(),
        };
        time("GetCadreDossier", M_GET_CADRE_DOSSIER, &dossier, 10_000);
        let submit = |i: usize| proto::SubmitRecordRequest {
            record: Some(proto::Record {
                cadre_id_number: "360821198001010019".into(),
                source_record_id: format!("JJ-2025-{i:06}"),
                source_version: 1,
                classification: proto::Classification::Internal as i32,
                payload: Some(proto::record::Payload::Sanction(proto::Sanction {
                    track: proto::SanctionTrack::Party as i32,
                    party_type: proto::PartySanctionType::Warning as i32,
                    decision_number: format!("赣纪处〔2025〕{i}号"),
                    decision_date: "2025-04-01".into(),
                    effective_date: "2025-04-02".into(),
                    form_of_discipline: 2,
                    ..Default::default()
                })),
                ..Default::default()
            }),
            request_id: format!("req-{i}"),
            validate_only: false,
        };
        let batch = proto::BatchSubmitRecordsRequest {
            requests: (0..1000).map(submit).collect(),
            request_id: "batch-1".into(),
            validate_only: false,
        };
        time(
            "BatchSubmitRecords x1000",
            M_BATCH_SUBMIT_RECORDS,
            &batch,
            50,
        );
    }
}
