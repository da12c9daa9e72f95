//! Requests edited at the wire level: the fields of an encoded message, and one string set at a field path on top of a valid request.

use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};

/// One field of an encoded message: its number, wire type and the bytes of
/// its key and value (and, when length-delimited, where the value starts).
pub struct RawField {
    pub number: u32,
    pub wire: WireType,
    pub raw: Vec<u8>,
    pub value_at: usize,
}

pub fn parse(mut buf: &[u8]) -> Vec<RawField> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let start = buf;
        let (number, wire) = decode_key(&mut buf).expect("baseline decodes");
        let mut value_at = start.len() - buf.len();
        match wire {
            WireType::Varint => {
                decode_varint(&mut buf).unwrap();
            }
            WireType::SixtyFourBit => buf = &buf[8..],
            WireType::ThirtyTwoBit => buf = &buf[4..],
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).unwrap() as usize;
                value_at = start.len() - buf.len();
                buf = &buf[len..];
            }
            other => panic!("baseline uses wire type {other:?}"),
        }
        let used = start.len() - buf.len();
        out.push(RawField {
            number,
            wire,
            raw: start[..used].to_vec(),
            value_at,
        });
    }
    out
}

pub fn length_delimited(number: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    encode_key(number, WireType::LengthDelimited, &mut out);
    encode_varint(value.len() as u64, &mut out);
    out.extend_from_slice(value);
    out
}

/// `msg` with the string at `path` set to `value`: the leaf replaces every
/// occurrence of its field; a message on the way is edited in place (the
/// first element if repeated) or added.
pub fn set_path(msg: &[u8], path: &[u32], value: &[u8]) -> Vec<u8> {
    let fields = parse(msg);
    let (head, rest) = (path[0], &path[1..]);
    let mut out = Vec::with_capacity(msg.len() + value.len() + 16);
    if rest.is_empty() {
        for f in fields.iter().filter(|f| f.number != head) {
            out.extend_from_slice(&f.raw);
        }
        out.extend(length_delimited(head, value));
        return out;
    }
    let mut done = false;
    for f in &fields {
        if !done && f.number == head && f.wire == WireType::LengthDelimited {
            out.extend(length_delimited(
                head,
                &set_path(&f.raw[f.value_at..], rest, value),
            ));
            done = true;
        } else {
            out.extend_from_slice(&f.raw);
        }
    }
    if !done {
        out.extend(length_delimited(head, &set_path(&[], rest, value)));
    }
    out
}

/// The first value of the field at `path` in `msg`, if present.
pub fn get_path(msg: &[u8], path: &[u32]) -> Option<Vec<u8>> {
    let f = parse(msg)
        .into_iter()
        .find(|f| f.number == path[0] && f.wire == WireType::LengthDelimited)?;
    let value = &f.raw[f.value_at..];
    if path.len() == 1 {
        Some(value.to_vec())
    } else {
        get_path(value, &path[1..])
    }
}

/// Whether every message on the way to the leaf of `path` is present in `msg`.
pub fn has_parents(msg: &[u8], path: &[u32]) -> bool {
    if path.len() <= 1 {
        return true;
    }
    parse(msg)
        .iter()
        .find(|f| f.number == path[0] && f.wire == WireType::LengthDelimited)
        .is_some_and(|f| has_parents(&f.raw[f.value_at..], &path[1..]))
}
