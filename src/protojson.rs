//! Protobuf canonical JSON (proto3 JSON mapping) of any `cadrex.v1` message, through the served descriptor set.
//!
//! Scripts read `cadrex client --output json` and `cadrex log checkpoint`
//! with any protobuf JSON parser, so both print the mapping every protobuf
//! runtime agrees on — lowerCamelCase names, int64 as strings, bytes as
//! base64, enums by name, Timestamp as RFC 3339, default values omitted —
//! produced by one encoder rather than by hand per message.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage};

/// The descriptors of every cadrex proto (and the well-known types they import).
static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
});

/// `message`, whose full protobuf name is `full_name` (e.g.
/// `cadrex.v1.Checkpoint`), as canonical JSON. Fails only when the name is
/// not a message of the descriptor set or does not describe `message`'s type,
/// which is a programming error, not an input one.
pub fn to_json(
    message: &impl prost::Message,
    full_name: &str,
) -> anyhow::Result<serde_json::Value> {
    let pool = POOL
        .as_ref()
        .map_err(|e| anyhow::anyhow!("the built-in descriptor set does not decode: {e}"))?;
    let descriptor = pool
        .get_message_by_name(full_name)
        .ok_or_else(|| anyhow::anyhow!("no message {full_name} in the descriptor set"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())?;
    Ok(serde_json::to_value(&dynamic)?)
}

/// [`to_json`] as indented text, as the command-line tools print it.
pub fn to_json_text(message: &impl prost::Message, full_name: &str) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&to_json(message, full_name)?)?)
}

/// The full gRPC path (`/cadrex.v1.DossierService/GetCadreDossier`) of a
/// cadrex method given by its bare name (`GetCadreDossier`), as the access log
/// records it; a path (starting with `/`) or an unknown name is returned as given.
pub fn full_method(name: &str) -> String {
    if name.starts_with('/') {
        return name.to_string();
    }
    let Ok(pool) = POOL.as_ref() else {
        return name.to_string();
    };
    pool.services()
        .filter(|s| s.package_name() == "cadrex.v1")
        .find_map(|s| {
            s.methods()
                .find(|m| m.name() == name)
                .map(|m| format!("/{}/{}", s.full_name(), m.name()))
        })
        .unwrap_or_else(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto;

    #[test]
    fn canonical_names_integers_bytes_enums_and_timestamps() {
        let cp = proto::Checkpoint {
            seq: 9_007_199_254_740_993,
            hash: "ab".into(),
            time: Some(prost_types::Timestamp {
                seconds: 1_764_800_000,
                nanos: 123_456_000,
            }),
            key_id: "k1".into(),
            signature: vec![1, 2, 3],
            signed_bytes: Vec::new(),
            public_key: Vec::new(),
        };
        let v = to_json(&cp, "cadrex.v1.Checkpoint").unwrap();
        assert_eq!(v["seq"], "9007199254740993");
        assert_eq!(v["time"], "2025-12-03T22:13:20.123456Z");
        assert_eq!(v["keyId"], "k1");
        assert_eq!(v["signature"], "AQID");
        assert!(v.get("signedBytes").is_none(), "defaults are omitted");
        let r = proto::OpinionReply {
            verdict: proto::Verdict::NotAgree as i32,
            ..Default::default()
        };
        let v = to_json(&r, "cadrex.v1.OpinionReply").unwrap();
        assert_eq!(v["verdict"], "VERDICT_NOT_AGREE");
        assert!(to_json(&r, "cadrex.v1.NoSuchMessage").is_err());
    }

    #[test]
    fn bare_method_names_become_paths() {
        assert_eq!(
            full_method("GetCadreDossier"),
            "/cadrex.v1.DossierService/GetCadreDossier"
        );
        assert_eq!(full_method("/x/Y"), "/x/Y");
        assert_eq!(full_method("Nope"), "Nope");
    }
}
