//! Arbitrary bodies to every method a node serves (issue 12, point 6): raw bytes, and bytes shaped
//! like protobuf (random fields of every wire type, strings with control characters, nested
//! messages, truncations). Whatever arrives, the answer is a status the caller can act on — never
//! `INTERNAL` or `UNKNOWN`, never a panic (a panicking handler resets the stream: `UNKNOWN` or
//! `INTERNAL` at the client) — and no log moves. Cases come from proptest's strategies with a fixed
//! seed, so a failure names a case that replays.

use einfo_proto::prost::bytes::{Buf, BufMut};
use einfo_proto::prost::encoding::{WireType, encode_key, encode_varint};
use einfo_testkit::{Backend, TestNode, both_backends};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Cases per method (each sent once): with the node's ~50 methods, a few thousand calls.
const CASES: usize = 48;

/// Sends and receives bodies as they are.
#[derive(Clone, Copy, Default)]
pub(crate) struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// One protobuf field of a random number and wire type, with a random payload.
#[derive(Clone, Debug)]
enum Field {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Fixed32(u32, u32),
    Text(u32, String),
    Bytes(u32, Vec<u8>),
    Nested(u32, Vec<Field>),
}

fn field() -> impl Strategy<Value = Field> {
    let tag = 1u32..24;
    let leaf = prop_oneof![
        (tag.clone(), any::<u64>()).prop_map(|(t, v)| Field::Varint(t, v)),
        (tag.clone(), prop_oneof![Just(0u64), Just(1), Just(u64::MAX), 0u64..10])
            .prop_map(|(t, v)| Field::Varint(t, v)),
        (tag.clone(), any::<u64>()).prop_map(|(t, v)| Field::Fixed64(t, v)),
        (tag.clone(), any::<u32>()).prop_map(|(t, v)| Field::Fixed32(t, v)),
        (tag.clone(), any::<String>()).prop_map(|(t, v)| Field::Text(t, v)),
        (
            tag.clone(),
            prop_oneof![
                Just("provinces/2008-01".to_owned()),
                Just("provinces/2008-01/sites/x".to_owned()),
                Just("registry".to_owned()),
                "[a-z0-9./\\-\\x00\\u{202E}]{0,40}",
            ]
        )
            .prop_map(|(t, v)| Field::Text(t, v)),
        (tag.clone(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(t, v)| Field::Bytes(t, v)),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        (1u32..24, proptest::collection::vec(inner, 0..6)).prop_map(|(t, v)| Field::Nested(t, v))
    })
}

fn encode(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        match f {
            Field::Varint(t, v) => {
                encode_key(*t, WireType::Varint, out);
                encode_varint(*v, out);
            }
            Field::Fixed64(t, v) => {
                encode_key(*t, WireType::SixtyFourBit, out);
                out.put_u64_le(*v);
            }
            Field::Fixed32(t, v) => {
                encode_key(*t, WireType::ThirtyTwoBit, out);
                out.put_u32_le(*v);
            }
            Field::Text(t, v) => delimited(*t, v.as_bytes(), out),
            Field::Bytes(t, v) => delimited(*t, v, out),
            Field::Nested(t, v) => {
                let mut inner = Vec::new();
                encode(v, &mut inner);
                delimited(*t, &inner, out);
            }
        }
    }
}

fn delimited(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Strings in the first fields: most requests begin with string fields (a parent, a name, a
/// jurisdiction), so these decode and reach the methods' own checks.
fn strings() -> impl Strategy<Value = Vec<Field>> {
    let value = prop_oneof![
        any::<String>(),
        Just("provinces/2008-01".to_owned()),
        Just("provinces/2008-79".to_owned()),
        Just("central".to_owned()),
        Just("registry".to_owned()),
        "provinces/2008-01/(sites|licences|applications|plans|inspections|decisions|reports)/[a-z0-9\\x00]{0,34}",
        "[a-zà-ỹ0-9 .\\-\\x00\\x1b\\u{202E}]{0,40}",
    ];
    proptest::collection::vec((1u32..7, value).prop_map(|(t, v)| Field::Text(t, v)), 0..5)
}

/// A body: raw bytes, string fields, or protobuf-shaped fields of any type, possibly cut short.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        strings().prop_map(|fs| {
            let mut out = Vec::new();
            encode(&fs, &mut out);
            out
        }),
        proptest::collection::vec(field(), 0..8).prop_map(|fs| {
            let mut out = Vec::new();
            encode(&fs, &mut out);
            out
        }),
        (proptest::collection::vec(field(), 1..8), any::<prop::sample::Index>()).prop_map(|(fs, cut)| {
            let mut out = Vec::new();
            encode(&fs, &mut out);
            let at = cut.index(out.len());
            out.truncate(at);
            out
        }),
    ]
}

/// The methods a node serves, with the caller each is sent as (the first role the method allows,
/// for province 01 or the centre, so that the body reaches the method's checks rather than stopping
/// at the role).
fn methods() -> Vec<(&'static str, einfo_common::auth::Caller)> {
    let node_packages = ["/einfo.registry.", "/einfo.inspection.", "/einfo.reporting.", "/einfo.log."];
    einfo_proto::methods::ALL
        .iter()
        .filter(|m| node_packages.iter().any(|p| m.starts_with(p)))
        .map(|m| {
            let role = einfo_common::authz::roles_of(m).expect("a declared method")[0];
            let jurisdiction =
                if role.is_central() { einfo_domain::Jurisdiction::Central } else { einfo_testkit::province("01") };
            (*m, einfo_common::auth::Caller { subject: format!("fuzz-{role}"), role, jurisdiction })
        })
        .collect()
}

async fn send(channel: tonic::transport::Channel, path: &'static str, token: &str, body: Vec<u8>) -> Code {
    match call(channel, path, Some(token), body, std::time::Duration::from_secs(5)).await {
        Ok(()) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// Calls `path` with a raw `body` (and a bearer `token`, if any): the status it ends with, or
/// `Ok` for a stream still open after `first` with nothing wrong in its first answer.
pub(crate) async fn call(
    channel: tonic::transport::Channel,
    path: &'static str,
    token: Option<&str>,
    body: Vec<u8>,
    first: std::time::Duration,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(body);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    }
    let path = http::uri::PathAndQuery::from_static(path);
    if einfo_common::caller_limits::STREAMING_METHODS.contains(&path.path()) {
        let mut stream = grpc.server_streaming(request, path, Raw).await?.into_inner();
        // A follow stream would wait for new entries: the first answer is enough.
        match tokio::time::timeout(first, stream.message()).await {
            Ok(Err(s)) => Err(s),
            _ => Ok(()),
        }
    } else {
        grpc.unary(request, path, Raw).await.map(|_| ())
    }
}

async fn heads(node: &TestNode) -> Vec<u64> {
    let mut out = Vec::new();
    for service in ["registry", "inspection", "reporting"] {
        out.push(node.log_sequence("01", service).await);
    }
    out
}

async fn any_body_to_any_method_is_answered_without_internal_and_changes_no_log(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let channel = node.channel().await;
    let before = heads(&node).await;
    let methods = methods();
    assert!(methods.len() >= 40, "the node's methods: {}", methods.len());
    let strategy = body();
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[12u8; 32]));
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for (path, caller) in &methods {
        let token = node.token(caller);
        for case in 0..CASES {
            let body = strategy.new_tree(&mut runner).expect("a case").current();
            let code = send(channel.clone(), path, &token, body.clone()).await;
            *codes.entry(format!("{code:?}")).or_default() += 1;
            if matches!(code, Code::Internal | Code::Unknown | Code::Unimplemented) {
                failures.push(format!("{path} case {case}: {code:?} for {body:02x?}"));
            }
        }
    }
    eprintln!("{} methods × {CASES} bodies: {codes:?}", methods.len());
    assert!(failures.is_empty(), "{} bodies answered badly:\n  {}", failures.len(), failures.join("\n  "));
    assert_eq!(heads(&node).await, before, "an arbitrary body wrote to a log");
}

both_backends!(any_body_to_any_method_is_answered_without_internal_and_changes_no_log);
