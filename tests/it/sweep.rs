//! Cross-jurisdiction sweep: two counties and their province, every agency kind, opinion requests spanning both counties; no read path shows a caller anything of the other county's pieces.
//!
//! The sweep is generic on purpose: every caller (each agency kind in each of
//! the three divisions) reads through every path in `ReadPath::ALL`, and every
//! answer — success or refusal, each event and stream frame — is scanned for
//! the canaries of the pieces outside the caller's jurisdiction. A new read
//! path is one more `ReadPath` arm; a new spanning resource, more canaries.

use std::collections::BTreeMap;
use std::time::Duration;

use cadrex::proto::{self, record::Payload};
use prost::Message;
use tonic::transport::Channel;

use crate::both_backends;
use crate::common::matrix::agencies;
use crate::common::{Backend, TestServer, new_cadre};
use crate::common::{record, records_client, submit};

both_backends!(opinion_pieces_never_cross_counties);

const COUNTIES: [&str; 2] = ["360821", "360802"];
const PROVINCE: &str = "360000";
const DIVISIONS: [&str; 3] = ["360821", "360802", PROVINCE];
/// The province's note names both cadres, as a real note might.
const NOTE_CANARY: &str = "NOTE-CANARY-省委组织部拟提拔两县人选";

type Opinions = proto::opinion_service_client::OpinionServiceClient<Channel>;
type Feed = proto::change_feed_service_client::ChangeFeedServiceClient<Channel>;
type Dossiers = proto::dossier_service_client::DossierServiceClient<Channel>;

/// One county's pieces of the spanning requests: its cadre, the record its
/// discipline commission cites, and that commission's reply.
struct Piece {
    county: &'static str,
    cadre: proto::Cadre,
    cited: String,
    text: String,
    signer: String,
    /// The note of the request that names this cadre alone.
    note: String,
}

impl Piece {
    /// Everything that identifies this piece, labelled.
    fn canaries(&self) -> Vec<(String, String)> {
        let id = self.cadre.name.trim_start_matches("cadres/").to_string();
        [
            ("cadre id", id),
            ("display name", self.cadre.display_name.clone()),
            ("id number", self.cadre.id_number.clone()),
            ("cited record", self.cited.clone()),
            ("reply text", self.text.clone()),
            ("signer", self.signer.clone()),
            ("own request's note", self.note.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{} {k}", self.county), v))
        .collect()
    }
}

/// The spanning world every caller reads.
struct World {
    pieces: BTreeMap<&'static str, Piece>,
    /// Requests of the province naming both counties' cadres; in the one
    /// keyed by a county only that county's discipline commission replied.
    spanning: BTreeMap<&'static str, String>,
    /// A request naming both, replied by both (so REPLIED as a whole).
    replied: String,
    /// The province's creates of the requests naming both, with request ids:
    /// sent again, each is a replay for the province and refused elsewhere.
    creates: Vec<proto::CreateOpinionRequestRequest>,
    /// The counties' replies, with request ids: a replay for the system that
    /// sent it, refused for every other (no one else may reply without a
    /// correction reason, or at all).
    replies: Vec<proto::ReplyOpinionRequest>,
    /// Requests of the province naming only that county's cadre (unanswered).
    single: BTreeMap<&'static str, String>,
}

impl World {
    /// What a caller at `division` must never see: every piece outside its
    /// jurisdiction, the note when it does not see every cadre, and the names
    /// of requests it sees no piece of.
    fn foreign(&self, division: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (county, piece) in &self.pieces {
            if !covers(division, county) {
                out.extend(piece.canaries());
                out.push((
                    format!("{county} single request"),
                    self.single[county].clone(),
                ));
            }
        }
        if !out.is_empty() {
            out.push(("note".into(), NOTE_CANARY.into()));
        }
        out
    }

    fn requests(&self) -> Vec<&String> {
        self.spanning
            .values()
            .chain(self.single.values())
            .chain([&self.replied])
            .collect()
    }
}

fn covers(caller: &str, division: &str) -> bool {
    let prefix = caller.trim_end_matches("00");
    division.starts_with(prefix)
}

/// One answer as bytes: the encoded message, or a refusal's code, message and details.
struct Answer {
    label: String,
    bytes: Vec<u8>,
}

fn refusal_bytes(s: &tonic::Status) -> Vec<u8> {
    let mut b = (s.code() as i32).to_be_bytes().to_vec();
    b.extend(s.message().as_bytes());
    b.extend(s.details());
    b
}

/// The answer to a call that named request `sent`, with that name blanked:
/// echoing what the caller sent discloses nothing, and blanked answers of
/// two calls compare equal when they say the same.
fn answer<M: Message>(
    label: String,
    r: Result<tonic::Response<M>, tonic::Status>,
    sent: &str,
) -> Answer {
    let bytes = match r {
        Ok(m) => m.into_inner().encode_to_vec(),
        Err(s) => refusal_bytes(&s),
    };
    Answer {
        label,
        bytes: blank(bytes, sent),
    }
}

fn blank(bytes: Vec<u8>, sent: &str) -> Vec<u8> {
    let n = sent.as_bytes();
    if n.is_empty() {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(n) {
            out.extend(b"opinionRequests/SENT");
            i += n.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w == n)
}

/// Every read path that can show an opinion request or a piece of one.
#[derive(Clone, Copy, Debug)]
enum ReadPath {
    GetOpinionRequest,
    ListOpinionRequests,
    ListChanges,
    WatchChanges,
    VettingDossier,
    DraftOpinion,
    CreateReplay,
    ReplyReplay,
    AccessLog,
}

impl ReadPath {
    const ALL: [ReadPath; 9] = [
        ReadPath::GetOpinionRequest,
        ReadPath::ListOpinionRequests,
        ReadPath::ListChanges,
        ReadPath::WatchChanges,
        ReadPath::VettingDossier,
        ReadPath::DraftOpinion,
        ReadPath::CreateReplay,
        ReadPath::ReplyReplay,
        ReadPath::AccessLog,
    ];
}

/// Reads through `path` as the system of `agency` at `division`, every
/// request and every cadre of its own jurisdiction it could ask about.
async fn read(
    server: &TestServer,
    world: &World,
    agency: &str,
    division: &str,
    path: ReadPath,
) -> Vec<Answer> {
    let ch = server.channel(agency, division).await;
    let label = |what: &str| format!("{agency}-{division} {path:?} {what}");
    let own: Vec<&Piece> = world
        .pieces
        .values()
        .filter(|p| covers(division, p.county))
        .collect();
    let mut out = Vec::new();
    match path {
        ReadPath::GetOpinionRequest => {
            let mut c = Opinions::new(ch);
            let missing = "opinionRequests/0123456789abcdef0123456789abcdef";
            let r = c
                .get_opinion_request(proto::GetOpinionRequestRequest {
                    name: missing.into(),
                })
                .await;
            let absent = answer(label(missing), r, missing);
            for name in world.requests() {
                let r = c
                    .get_opinion_request(proto::GetOpinionRequestRequest { name: name.clone() })
                    .await;
                let refused = r.is_err();
                let a = answer(label(name), r, name);
                // DESIGN §1: a request with no visible piece does not exist.
                if refused {
                    assert_eq!(
                        a.bytes, absent.bytes,
                        "{} differs from a missing one",
                        a.label
                    );
                }
                out.push(a);
            }
        }
        ReadPath::ListOpinionRequests => {
            let mut c = Opinions::new(ch);
            for filter in ["", r#"state = "PENDING""#, r#"state = "REPLIED""#] {
                let mut token = String::new();
                loop {
                    let r = c
                        .list_opinion_requests(proto::ListOpinionRequestsRequest {
                            page_size: 1,
                            page_token: token.clone(),
                            filter: filter.into(),
                        })
                        .await;
                    token = r
                        .as_ref()
                        .map(|r| r.get_ref().next_page_token.clone())
                        .unwrap_or_default();
                    out.push(answer(label(filter), r, ""));
                    if token.is_empty() {
                        break;
                    }
                }
            }
        }
        ReadPath::ListChanges => {
            let (answers, _) = list_all_changes(Feed::new(ch), &label("")).await;
            out.extend(answers);
        }
        ReadPath::WatchChanges => {
            let (_, head) = list_all_changes(Feed::new(ch.clone()), "").await;
            out.push(watch_until(Feed::new(ch), head, label("")).await);
        }
        ReadPath::VettingDossier => {
            let mut c = Dossiers::new(ch);
            for piece in &own {
                for name in world.requests() {
                    let r = c
                        .get_cadre_dossier(proto::GetCadreDossierRequest {
                            cadre: piece.cadre.name.clone(),
                            purpose: proto::Purpose::AppointmentVetting as i32,
                            opinion_request: name.clone(),
                        })
                        .await;
                    out.push(answer(label(name), r, name));
                }
            }
        }
        ReadPath::DraftOpinion => {
            let mut c = Opinions::new(ch);
            for piece in &own {
                for name in world.requests() {
                    let r = c
                        .draft_opinion(proto::DraftOpinionRequest {
                            name: name.clone(),
                            cadre: piece.cadre.name.clone(),
                            as_of_date: String::new(),
                        })
                        .await;
                    out.push(answer(label(name), r, name));
                }
            }
        }
        ReadPath::CreateReplay => {
            let mut c = Opinions::new(ch);
            for body in &world.creates {
                let r = c.create_opinion_request(body.clone()).await;
                out.push(answer(label(&body.request_id), r, ""));
            }
        }
        ReadPath::ReplyReplay => {
            let mut c = Opinions::new(ch);
            for body in &world.replies {
                // Only a reply about its own cadre is sent: the answer for
                // another echoes nothing but what the caller sent.
                if !own.iter().any(|p| p.cadre.name == body.cadre) {
                    continue;
                }
                let r = c.reply_opinion(body.clone()).await;
                out.push(answer(label(&body.name), r, &body.name));
            }
        }
        ReadPath::AccessLog => {
            // Every row the caller may read, by every system so far: the
            // province's calls name both counties' cadres in one row.
            let mut c = proto::access_log_service_client::AccessLogServiceClient::new(ch);
            let mut token = String::new();
            loop {
                let r = c
                    .list_access_events(proto::ListAccessEventsRequest {
                        page_size: 200,
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await;
                token = r
                    .as_ref()
                    .map(|r| r.get_ref().next_page_token.clone())
                    .unwrap_or_default();
                out.push(answer(label("page"), r, ""));
                if token.is_empty() {
                    break;
                }
            }
        }
    }
    out
}

/// Every page of the feed from the start; the answers and the cursor reached
/// (`None` when the caller may not read the feed).
async fn list_all_changes(mut feed: Feed, label: &str) -> (Vec<Answer>, Option<String>) {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = feed
            .list_changes(proto::ListChangesRequest {
                after_cursor: cursor.clone(),
                kinds: Vec::new(),
                page_size: 2,
            })
            .await;
        let next = match &r {
            Ok(r) => r.get_ref().next_cursor.clone(),
            Err(_) => {
                out.push(answer(label.to_string(), r, ""));
                return (out, None);
            }
        };
        out.push(answer(format!("{label} after {cursor}"), r, ""));
        if next == cursor {
            return (out, Some(cursor));
        }
        cursor = next;
    }
}

/// A watch from the start, read until a frame carries the cursor `head` (the
/// feed's end): events and bookmarks alike, as one answer.
async fn watch_until(mut feed: Feed, head: Option<String>, label: String) -> Answer {
    let r = feed
        .watch_changes(proto::WatchChangesRequest::default())
        .await;
    let (mut stream, head) = match (r, head) {
        (Ok(s), Some(h)) => (s.into_inner(), h),
        (Ok(_), None) => panic!("{label}: a watch opened where the list was refused"),
        (Err(s), _) => {
            return Answer {
                label,
                bytes: refusal_bytes(&s),
            };
        }
    };
    let mut bytes = Vec::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap_or_else(|_| panic!("{label}: the watch never reached the feed's end"));
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => panic!("{label}: the watch ended"),
            Err(s) => panic!("{label}: {s:?}"),
        };
        bytes.extend(frame.encode_to_vec());
        let at = match frame.frame {
            Some(proto::watch_changes_response::Frame::Event(e)) => e.cursor,
            Some(proto::watch_changes_response::Frame::Bookmark(b)) => b.cursor,
            None => String::new(),
        };
        if at == head {
            return Answer { label, bytes };
        }
    }
}

fn sanction(decided: &str) -> Payload {
    Payload::Sanction(proto::Sanction {
        track: proto::SanctionTrack::Party as i32,
        party_type: proto::PartySanctionType::Warning as i32,
        decision_number: "赣纪〔2026〕7号".into(),
        decision_date: decided.into(),
        effective_date: decided.into(),
        form_of_discipline: 2,
        ..Default::default()
    })
}

/// Two counties' cadres, each with a sanction; province requests spanning
/// both, each answered in one county only, and one request per county.
async fn build_world(server: &TestServer) -> World {
    let mut pieces = BTreeMap::new();
    for (i, county) in COUNTIES.into_iter().enumerate() {
        let mut c = new_cadre(&format!("雀{}号干部", i + 1), county, 60 + i as u32);
        c.display_name = format!("金丝雀{county}");
        let cadre = server
            .cadres("organization", county)
            .await
            .create_cadre(proto::CreateCadreRequest {
                cadre: Some(c),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let cited = records_client(server.channel("discipline", county).await)
            .submit_record(submit(record(
                &cadre,
                &format!("SC-{county}"),
                1,
                sanction("2025-01-10"),
            )))
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap()
            .name;
        pieces.insert(
            county,
            Piece {
                county,
                cadre,
                cited,
                text: format!("TEXT-CANARY-{county}-经查该同志"),
                signer: format!("SIGNER-CANARY-{county}"),
                note: format!("NOTE-CANARY-{county}-本县人选"),
            },
        );
    }
    let mut province = Opinions::new(server.channel("organization", PROVINCE).await);
    let mut creates = Vec::new();
    let mut ask = async |cadres: Vec<String>, note: &str| {
        let body = proto::CreateOpinionRequestRequest {
            cadres,
            purpose: proto::OpinionPurpose::Promotion as i32,
            note: note.into(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        let name = province
            .create_opinion_request(body.clone())
            .await
            .unwrap()
            .into_inner()
            .name;
        if body.cadres.len() > 1 {
            creates.push(body);
        }
        name
    };
    let both: Vec<String> = pieces.values().map(|p| p.cadre.name.clone()).collect();
    let mut spanning = BTreeMap::new();
    let mut single = BTreeMap::new();
    for county in COUNTIES {
        spanning.insert(county, ask(both.clone(), NOTE_CANARY).await);
        let alone = &pieces[county];
        single.insert(
            county,
            ask(vec![alone.cadre.name.clone()], &alone.note).await,
        );
    }
    let replied = ask(both.clone(), NOTE_CANARY).await;
    let answers = spanning
        .iter()
        .map(|(c, r)| (*c, r))
        .chain(COUNTIES.into_iter().map(|c| (c, &replied)));
    let mut replies = Vec::new();
    for (county, request) in answers {
        let p = &pieces[county];
        let body = proto::ReplyOpinionRequest {
            name: request.clone(),
            cadre: p.cadre.name.clone(),
            verdict: proto::Verdict::IssueNotBlocking as i32,
            text: p.text.clone(),
            cited_records: vec![p.cited.clone()],
            signer: p.signer.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        Opinions::new(server.channel("discipline", county).await)
            .reply_opinion(body.clone())
            .await
            .unwrap();
        replies.push(body);
    }
    World {
        pieces,
        spanning,
        single,
        replied,
        creates,
        replies,
    }
}

/// What an entitled caller must find somewhere on a path, so that the sweep
/// cannot pass by reading nothing: a discipline commission its own cadres
/// everywhere and its own replies wherever requests are shown; the province's
/// organization department everything of its own requests, note included.
fn expected(world: &World, agency: &str, division: &str, path: ReadPath) -> Vec<String> {
    let shows_requests = matches!(
        path,
        ReadPath::GetOpinionRequest
            | ReadPath::ListOpinionRequests
            | ReadPath::ListChanges
            | ReadPath::WatchChanges
    );
    let mut out = Vec::new();
    for piece in world.pieces.values() {
        if !covers(division, piece.county) {
            continue;
        }
        let replays = matches!(path, ReadPath::CreateReplay | ReadPath::ReplyReplay);
        let own_reply = matches!(path, ReadPath::ReplyReplay) && division == piece.county;
        match agency {
            "discipline" => {
                if !replays {
                    out.push(piece.cadre.name.clone());
                }
                if shows_requests || own_reply {
                    out.push(piece.text.clone());
                    out.push(piece.signer.clone());
                }
                if shows_requests {
                    // It sees every cadre of the request naming its own alone.
                    out.push(piece.note.clone());
                }
            }
            "organization"
                if division == PROVINCE
                    && (shows_requests || matches!(path, ReadPath::CreateReplay)) =>
            {
                out.push(piece.cadre.name.clone());
                out.push(piece.text.clone());
                out.push(NOTE_CANARY.into());
            }
            "organization" if division == PROVINCE && matches!(path, ReadPath::VettingDossier) => {
                out.push(piece.cadre.display_name.clone());
            }
            _ => {}
        }
    }
    out
}

async fn opinion_pieces_never_cross_counties(backend: Backend) {
    let server = TestServer::spawn_with(backend, |c| {
        c.watch_bookmark_interval = Duration::from_millis(300);
    })
    .await;
    let world = build_world(&server).await;
    let mut leaks = Vec::new();
    let mut answers = 0;
    for division in DIVISIONS {
        let foreign = world.foreign(division);
        for agency in agencies() {
            for path in ReadPath::ALL {
                let got = read(&server, &world, agency, division, path).await;
                answers += got.len();
                for a in &got {
                    for (what, canary) in &foreign {
                        if contains(&a.bytes, canary) {
                            leaks.push(format!("{}: {what} ({canary})", a.label));
                        }
                    }
                }
                let all: Vec<u8> = got.iter().flat_map(|a| a.bytes.clone()).collect();
                for want in expected(&world, agency, division, path) {
                    assert!(
                        contains(&all, &want),
                        "{agency}-{division} {path:?} shows nothing of its own {want}"
                    );
                }
            }
        }
    }
    assert!(answers > 100, "the sweep read only {answers} answers");
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
}
