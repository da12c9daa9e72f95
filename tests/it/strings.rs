//! Every string field of every request message is clean text (DESIGN §4): control characters and bidirectional overrides are refused in each of them, by name, before anything is looked up or stored.
//!
//! The fields come from the served descriptors: each RPC's input message is
//! walked (nested and repeated messages, every `oneof` member), and each
//! string field is set in turn to `a<char>b` on an otherwise empty request,
//! sent by a system that `AllowedMethods` says may call the RPC. A field
//! inside a batch's item is refused as that item's error, the batch answering
//! OK for the others. Which fields
//! keep `\n` and `\t` is read from `cadrex::domain::LONG_TEXT_FIELDS`, the
//! list the server uses.

use std::collections::BTreeMap;
use std::time::Instant;

use prost_types::field_descriptor_proto::{Label, Type};
use tonic::Code;
use tonic::transport::Channel;

use crate::both_backends;
use crate::common::matrix::agencies;
use crate::common::set_path;
use crate::common::{
    Backend, RpcMethod, SystemServiceClient, TestServer, cadrex_methods, count_rows,
    descriptor_set, message_type, raw_call,
};
use crate::common::{Cells, postgres_columns, sqlite_columns};

both_backends!(control_and_bidi_characters_are_refused_in_every_string_field);

/// Characters every string field refuses; long text keeps `\n` and `\t`.
fn refused_chars(long: bool) -> Vec<char> {
    (0u32..0x20)
        .chain([0x7F])
        .chain(0x202A..=0x202E)
        .chain(0x2066..=0x2069)
        .filter_map(char::from_u32)
        .filter(|c| !(long && (*c == '\n' || *c == '\t')))
        .collect()
}

/// One string field of a request: its field numbers from the root, its path
/// as the server names it (`cadre.posts[0].unit_name`: a repeated field on
/// the way is its first element), and its full protobuf name.
#[derive(Clone, Debug)]
struct StringField {
    numbers: Vec<u32>,
    path: String,
    full_name: String,
}

/// Every string field reachable from message `type_name` (a message type
/// already on the path is not entered again).
fn string_fields(set: &prost_types::FileDescriptorSet, type_name: &str) -> Vec<StringField> {
    fn walk(
        set: &prost_types::FileDescriptorSet,
        type_name: &str,
        prefix: &StringField,
        on_path: &mut Vec<String>,
        out: &mut Vec<StringField>,
    ) {
        let msg = message_type(set, type_name).unwrap_or_else(|| panic!("{type_name}"));
        if on_path.iter().any(|t| t == type_name) {
            return;
        }
        on_path.push(type_name.to_string());
        for field in &msg.field {
            let mut f = prefix.clone();
            f.numbers.push(field.number() as u32);
            if !f.path.is_empty() {
                f.path.push('.');
            }
            f.path.push_str(field.name());
            if field.label() == Label::Repeated {
                f.path.push_str("[0]");
            }
            f.full_name = format!("{}.{}", type_name.trim_start_matches('.'), field.name());
            match field.r#type() {
                Type::String => out.push(f),
                Type::Message => walk(set, field.type_name(), &f, on_path, out),
                _ => {}
            }
        }
        on_path.pop();
    }
    let mut out = Vec::new();
    let root = StringField {
        numbers: Vec::new(),
        path: String::new(),
        full_name: String::new(),
    };
    walk(set, type_name, &root, &mut Vec::new(), &mut out);
    out
}

/// Every cell of every table but the access log's, so that a refused call
/// can be shown to have changed no data.
async fn data_tables(url: &str) -> Vec<(String, Cells)> {
    let columns = if url.starts_with("sqlite:") {
        sqlite_columns(url).await
    } else {
        postgres_columns(url).await
    };
    columns
        .into_iter()
        .filter(|(c, _)| !c.contains("access_log") && !c.contains("log_checkpoints"))
        .collect()
}

/// The field number of a batch method's items: a top-level repeated field of
/// its input whose elements are the input of another method. A batch answers
/// for each item (OK, with the item's refusal), so a refused field inside an
/// item is that item's `ItemError`, not the call's.
fn batch_item_number(set: &prost_types::FileDescriptorSet, method: &RpcMethod) -> Option<u32> {
    let inputs: Vec<String> = cadrex_methods().into_iter().map(|m| m.input).collect();
    message_type(set, &method.input)?
        .field
        .iter()
        .find(|f| {
            f.label() == Label::Repeated
                && f.r#type() == Type::Message
                && inputs.iter().any(|i| i == f.type_name())
        })
        .map(|f| f.number() as u32)
}

/// The field paths of every `cadrex.v1.ItemError` in an encoded answer.
fn item_violations(output: &str, bytes: &[u8]) -> Vec<String> {
    use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};
    fn collect(m: &DynamicMessage, out: &mut Vec<String>) {
        if m.descriptor().full_name() == "cadrex.v1.ItemError" {
            if let Some(Value::List(vs)) = m.get_field_by_name("field_violations").as_deref() {
                for v in vs {
                    if let Some(Value::String(f)) = v
                        .as_message()
                        .and_then(|v| v.get_field_by_name("field"))
                        .as_deref()
                    {
                        out.push(f.clone());
                    }
                }
            }
            return;
        }
        for (_, v) in m.fields() {
            match v {
                Value::Message(inner) => collect(inner, out),
                Value::List(vs) => vs
                    .iter()
                    .filter_map(Value::as_message)
                    .for_each(|inner| collect(inner, out)),
                _ => {}
            }
        }
    }
    let pool = DescriptorPool::decode(cadrex::proto::FILE_DESCRIPTOR_SET).unwrap();
    let desc = pool
        .get_message_by_name(output.trim_start_matches('.'))
        .unwrap();
    let mut out = Vec::new();
    collect(&DynamicMessage::decode(desc, bytes).unwrap(), &mut out);
    out
}

/// What was wrong with the answers to one field, one line per character.
async fn probe_field(
    channel: Channel,
    method: RpcMethod,
    field: StringField,
    long: bool,
    item: bool,
) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut calls = 0;
    for c in refused_chars(long) {
        let value = format!("a{c}b");
        let body = set_path(&[], &field.numbers, value.as_bytes());
        calls += 1;
        let what = format!("{} {} U+{:04X}", method.short, field.path, c as u32);
        let answer = raw_call(channel.clone(), &method, body, &[]).await;
        if item {
            // Named as the item's own violations are: from the item, or
            // with the item's place in the batch.
            let within = field.path.split_once('.').map_or("", |(_, rest)| rest);
            match answer {
                Ok(bytes) => {
                    let fields = item_violations(&method.output, &bytes);
                    if fields != [within] && fields != [field.path.as_str()] {
                        failures.push(format!("{what}: item violations {fields:?}"));
                    }
                }
                Err(s) => failures.push(format!("{what}: the batch was refused: {s:?}")),
            }
            continue;
        }
        match answer {
            Err(s) if s.code() == Code::InvalidArgument => {
                use tonic_types::StatusExt;
                let fields: Vec<String> = s
                    .get_details_bad_request()
                    .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                    .unwrap_or_default();
                if fields != [field.path.clone()] {
                    failures.push(format!("{what}: violations {fields:?}"));
                }
            }
            other => failures.push(format!("{what}: answered {:?}", other.map(|_| "OK"))),
        }
    }
    if long {
        // Line breaks and tabs are text here: whatever else the empty request
        // lacks, this field is not what is wrong with it.
        let body = set_path(&[], &field.numbers, "一\n\t二".as_bytes());
        calls += 1;
        if let Err(s) = raw_call(channel.clone(), &method, body, &[]).await {
            use tonic_types::StatusExt;
            let named = s
                .get_details_bad_request()
                .is_some_and(|b| b.field_violations.iter().any(|v| v.field == field.path));
            if named {
                failures.push(format!(
                    "{} {}: long text refused a line break or tab: {}",
                    method.short,
                    field.path,
                    s.message()
                ));
            }
        }
    }
    (calls, failures)
}

async fn control_and_bidi_characters_are_refused_in_every_string_field(backend: Backend) {
    let started = Instant::now();
    let server = TestServer::spawn(backend).await;
    // Something to find, so that a check running after a lookup could show.
    let cadre = server.register("360821", "字段检查", 1).await;
    assert!(!cadre.name.is_empty());
    let set = descriptor_set();

    // Who may call what, from the server itself.
    let mut callers: BTreeMap<String, Channel> = BTreeMap::new();
    for agency in agencies() {
        let channel = server.channel(agency, "360821").await;
        let allowed = SystemServiceClient::new(channel.clone())
            .allowed_methods(cadrex::proto::AllowedMethodsRequest {})
            .await
            .unwrap()
            .into_inner()
            .methods;
        for m in allowed {
            callers.entry(m).or_insert_with(|| channel.clone());
        }
    }
    let before = data_tables(&server.store_url).await;
    let rows_before = count_rows(&server.store_url, "SELECT COUNT(*) FROM access_log").await;

    let mut work = Vec::new();
    let mut failures = Vec::new();
    for method in cadrex_methods() {
        let fields = string_fields(&set, &method.input);
        if fields.is_empty() {
            continue;
        }
        let Some(channel) = callers.get(&method.path) else {
            failures.push(format!("{}: no agency may call it", method.short));
            continue;
        };
        let items = batch_item_number(&set, &method);
        for field in fields {
            let long = cadrex::domain::LONG_TEXT_FIELDS.contains(&field.full_name.as_str());
            let item = items.is_some() && items == field.numbers.first().copied();
            work.push((channel.clone(), method.clone(), field, long, item));
        }
    }
    let fields = work.len();
    assert!(fields > 100, "only {fields} string fields found");
    assert!(
        work.iter().filter(|w| w.4).count() > 20,
        "the batches' item fields are probed as items"
    );
    for name in cadrex::domain::LONG_TEXT_FIELDS {
        assert!(
            work.iter().any(|w| w.2.full_name == *name),
            "long-text field {name} is in no request"
        );
    }
    // A few fields at a time, each field's characters in one loop.
    let queue = std::sync::Arc::new(std::sync::Mutex::new(work));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let queue = queue.clone();
        workers.spawn(async move {
            let mut calls = 0;
            let mut failures = Vec::new();
            loop {
                let Some((channel, method, field, long, item)) = queue.lock().unwrap().pop() else {
                    return (calls, failures);
                };
                let (n, f) = probe_field(channel, method, field, long, item).await;
                calls += n;
                failures.extend(f);
            }
        });
    }
    let mut calls = 0;
    while let Some(r) = workers.join_next().await {
        let (n, f) = r.unwrap();
        calls += n;
        failures.extend(f);
    }

    // Refused like any other INVALID_ARGUMENT: one row each, and no data changed.
    let rows_after = count_rows(&server.store_url, "SELECT COUNT(*) FROM access_log").await;
    if rows_after - rows_before != calls as i64 {
        failures.push(format!(
            "{calls} calls left {} access-log rows",
            rows_after - rows_before
        ));
    }
    let after = data_tables(&server.store_url).await;
    for ((column, cells), (_, was)) in after.iter().zip(&before) {
        if cells != was {
            failures.push(format!("{column} changed"));
        }
    }
    if after.len() != before.len() {
        failures.push("the store's tables changed".into());
    }
    eprintln!(
        "strings ({backend:?}): {fields} string fields, {calls} calls, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
