//! The crate's one error type and its single mapping onto a gRPC `Status` with `google.rpc` details.

pub use tonic::Code;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// ErrorInfo domain of every cadrex error.
pub const DOMAIN: &str = "cadrex";

/// RetryInfo delay sent with UNAVAILABLE: long enough for the pool to replace
/// a broken connection, short enough that a client barely notices.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// One bad field of a request, reported as a `BadRequest` field violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path in the request message, e.g. `cadre.posts[0].unit_credit_code`.
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Errors named by meaning. Messages must never carry informant data or
/// anything the caller may not see; the status mapping below is the only place
/// they become wire errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A cadre that is missing or outside the caller's jurisdiction; both get the
    /// same answer so that nobody can probe for existence.
    #[error("cadre not accessible")]
    CadreNotAccessible,
    #[error("permission denied: {message}")]
    PermissionDenied { reason: Reason, message: String },
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("invalid argument: {violations:?}")]
    InvalidArgument { violations: Vec<FieldViolation> },
    /// The request body does not decode as the method's request message
    /// (tonic's own INTERNAL, rewritten by `limits`); the detail is the
    /// decoder's, about the caller's own bytes.
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// The request is compressed with an encoding the server does not accept
    /// (tonic's own UNIMPLEMENTED, before any handler).
    #[error("unsupported encoding: {0}")]
    UnsupportedEncoding(String),
    /// The request message is over the size limit (tonic's own OUT_OF_RANGE,
    /// before any handler; RESOURCE_EXHAUSTED on the wire).
    #[error("message too large: {0}")]
    MessageTooLarge(String),
    #[error("failed precondition: {message}")]
    FailedPrecondition { reason: Reason, message: String },
    /// A reply kinder than the draft the rules give the replier, without a
    /// `deviation_reason` (DESIGN §6); `draft` is the draft's verdict, sent in
    /// the ErrorInfo metadata so that the replier sees what it departs from.
    #[error("deviation reason required (draft {draft})")]
    DeviationReasonRequired { draft: &'static str },
    #[error("aborted: {message}")]
    Aborted { reason: Reason, message: String },
    /// A change-feed cursor older than the retention window or from another
    /// epoch; `oldest` is the oldest valid cursor, to re-snapshot from.
    #[error("cursor expired")]
    CursorExpired { oldest: String },
    /// The store could not be reached or gave up; safe to retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The calling system is over its rate or concurrency limit (`ratelimit`); it
    /// may retry after `retry_after`, other systems are unaffected.
    #[error("resource exhausted: {message}")]
    ResourceExhausted {
        reason: Reason,
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// INVALID_ARGUMENT for a single field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument {
            violations: vec![FieldViolation::new(field, description)],
        }
    }

    pub fn denied(reason: Reason, message: impl Into<String>) -> Self {
        Error::PermissionDenied {
            reason,
            message: message.into(),
        }
    }

    pub fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        Error::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Error::Internal(e.into())
    }

    /// The gRPC code this error maps to (also written to the access log).
    pub fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::CadreNotAccessible | Error::PermissionDenied { .. } => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::InvalidArgument { .. } | Error::MalformedRequest(_) => Code::InvalidArgument,
            Error::UnsupportedEncoding(_) => Code::Unimplemented,
            Error::MessageTooLarge(_) => Code::ResourceExhausted,
            Error::FailedPrecondition { .. }
            | Error::CursorExpired { .. }
            | Error::DeviationReasonRequired { .. } => Code::FailedPrecondition,
            Error::Aborted { .. } => Code::Aborted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::ResourceExhausted { .. } => Code::ResourceExhausted,
            Error::Internal(_) => Code::Internal,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::WorkerCrashed => Error::Unavailable(e.to_string()),
            // 22021/22P05: text PostgreSQL cannot store (NUL above all), which
            // only a client's value can carry; SQLite would have stored it.
            sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("22021" | "22P05")) => {
                Error::InvalidArgument {
                    violations: vec![FieldViolation::new(
                        "",
                        "text must not contain NUL (U+0000) or characters the store cannot hold",
                    )],
                }
            }
            sqlx::Error::Database(d) => match d.code().as_deref().map(transient_sqlstate) {
                Some(Some(Transient::Unavailable)) => Error::Unavailable(e.to_string()),
                Some(Some(Transient::Aborted)) => Error::Aborted {
                    reason: Reason::ConcurrentModification,
                    message: "the store gave up on a conflicting transaction; retry".into(),
                },
                Some(None) | None => Error::Internal(e.into()),
            },
            _ => Error::Internal(e.into()),
        }
    }
}

/// How a transient database failure should be retried.
enum Transient {
    Unavailable,
    Aborted,
}

/// PostgreSQL SQLSTATEs that say "try again" rather than "this request is
/// wrong": a lost or refused connection and a server shutting down (the
/// transaction never committed), or a serialization failure or deadlock
/// victim. SQLite reports lock contention as SQLITE_BUSY (5), which the busy
/// timeout has already waited out, so that stays a server fault.
fn transient_sqlstate(code: &str) -> Option<Transient> {
    match code {
        // Class 08: connection exception; 57P01–57P03: admin shutdown, crash
        // shutdown, cannot connect now.
        c if c.starts_with("08") => Some(Transient::Unavailable),
        "57P01" | "57P02" | "57P03" => Some(Transient::Unavailable),
        // Serialization failure, deadlock detected.
        "40001" | "40P01" => Some(Transient::Aborted),
        _ => None,
    }
}

/// Every `ErrorInfo` reason cadrex sends. Clients branch on these, so the
/// wire text ([`Reason::as_str`]) never changes once shipped; each has a
/// zh-CN message in [`Reason::localized`], whose `match` has no fallback arm
/// so that a reason added without a message does not compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The cadre does not exist or lies outside the caller's jurisdiction (one answer for both).
    CadreNotAccessible,
    NotFound,
    AlreadyExists,
    Unauthenticated,
    InvalidArgument,
    /// The body does not decode as the method's request message.
    MalformedRequest,
    /// The body is compressed with an encoding the server does not accept.
    UnsupportedEncoding,
    /// The request message is over the size limit.
    MessageTooLarge,
    /// The caller's etag no longer matches the stored revision.
    EtagMismatch,
    /// The policy does not let this system perform the action.
    ActionNotPermitted,
    /// The action reaches outside the caller's jurisdiction.
    Jurisdiction,
    /// A conflicting transaction won; retry.
    ConcurrentModification,
    /// A request id reused with other content.
    RequestIdReused,
    StoreUnavailable,
    /// The caller's agency is not an authoritative source of this record kind.
    KindNotOwned,
    /// A state-secret record sent to an exchange not certified for them.
    ClassifiedNotAccepted,
    /// The same source version submitted again with other content.
    VersionConflict,
    /// Only the owning system may retract a record.
    NotOwner,
    RateLimited,
    TooManyConcurrentCalls,
    /// A change-feed cursor older than the retained changes or from another epoch.
    CursorExpired,
    /// Only a pending opinion request can be withdrawn.
    NotPending,
    /// Only the requesting body may act on its opinion request.
    NotRequester,
    /// Appointment vetting names no open request of the caller's for the cadre.
    NoOpenRequest,
    /// A withdrawn opinion request takes no replies.
    RequestWithdrawn,
    /// PostgreSQL is backed up with `pg_dump`, not by the server.
    UsePgDump,
    /// An audit finding whose engagement is not (yet) in the exchange.
    EngagementNotFound,
    /// A reply kinder than the rules' draft needs a `deviation_reason`.
    DeviationReasonRequired,
    Internal,
}

impl Reason {
    /// The UPPER_SNAKE text sent as the ErrorInfo reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::CadreNotAccessible => "CADRE_NOT_ACCESSIBLE",
            Reason::NotFound => "NOT_FOUND",
            Reason::AlreadyExists => "ALREADY_EXISTS",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::MalformedRequest => "MALFORMED_REQUEST",
            Reason::UnsupportedEncoding => "UNSUPPORTED_ENCODING",
            Reason::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Reason::EtagMismatch => "ETAG_MISMATCH",
            Reason::ActionNotPermitted => "ACTION_NOT_PERMITTED",
            Reason::Jurisdiction => "JURISDICTION",
            Reason::ConcurrentModification => "CONCURRENT_MODIFICATION",
            Reason::RequestIdReused => "REQUEST_ID_REUSED",
            Reason::StoreUnavailable => "STORE_UNAVAILABLE",
            Reason::KindNotOwned => "KIND_NOT_OWNED",
            Reason::ClassifiedNotAccepted => "CLASSIFIED_NOT_ACCEPTED",
            Reason::VersionConflict => "VERSION_CONFLICT",
            Reason::NotOwner => "NOT_OWNER",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::TooManyConcurrentCalls => "TOO_MANY_CONCURRENT_CALLS",
            Reason::CursorExpired => "CURSOR_EXPIRED",
            Reason::NotPending => "NOT_PENDING",
            Reason::NotRequester => "NOT_REQUESTER",
            Reason::NoOpenRequest => "NO_OPEN_REQUEST",
            Reason::RequestWithdrawn => "REQUEST_WITHDRAWN",
            Reason::UsePgDump => "USE_PG_DUMP",
            Reason::EngagementNotFound => "ENGAGEMENT_NOT_FOUND",
            Reason::DeviationReasonRequired => "DEVIATION_REASON_REQUIRED",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The zh-CN message sent beside the reason.
    pub fn localized(self) -> &'static str {
        match self {
            Reason::CadreNotAccessible => "干部不存在或不在您的管理权限范围内",
            Reason::NotFound => "请求的资源不存在",
            Reason::AlreadyExists => "资源已存在",
            Reason::Unauthenticated => "未能确认调用系统的身份，请使用交换平台签发的有效证书",
            Reason::InvalidArgument => "请求参数不符合要求，请按字段说明更正后重试",
            Reason::MalformedRequest => {
                "请求报文无法按接口定义解析，请检查客户端使用的接口定义版本"
            }
            Reason::UnsupportedEncoding => "请求报文的压缩方式不受支持，请以不压缩的方式发送",
            Reason::MessageTooLarge => "请求报文超过大小上限，请分批发送",
            Reason::EtagMismatch => "数据已被他人修改，请重新读取后再提交",
            Reason::ActionNotPermitted => "本系统无权执行该操作",
            Reason::Jurisdiction => "超出本机关的干部管理权限",
            Reason::ConcurrentModification => "数据正被同时修改，请稍后重试",
            Reason::RequestIdReused => "请求编号已用于另一内容不同的请求",
            Reason::StoreUnavailable => "数据存储暂时不可用，请稍后重试",
            Reason::KindNotOwned => "本机关不是该类记录的权威来源，无权报送",
            Reason::ClassifiedNotAccepted => {
                "本系统未取得涉密信息系统资质，不接收涉及国家秘密的记录"
            }
            Reason::VersionConflict => "同一版本号的记录内容不一致，请使用新的版本号",
            Reason::NotOwner => "只有记录所属机关可以撤回该记录",
            Reason::RateLimited => "本系统调用过于频繁，请按建议的时间间隔后重试",
            Reason::TooManyConcurrentCalls => "本系统同时进行的调用过多，请待已有调用完成后重试",
            Reason::CursorExpired => "同步游标已失效，请重新获取全量数据后再增量同步",
            Reason::NotPending => "只有待答复的廉政意见征询可以撤回",
            Reason::NotRequester => "只有提出征询的机关可以处理该廉政意见征询",
            Reason::NoOpenRequest => "任前廉政审查须指明本机关对该干部尚未办结的廉政意见征询",
            Reason::RequestWithdrawn => "该廉政意见征询已撤回，不再接受答复",
            Reason::UsePgDump => "PostgreSQL 存储请使用 pg_dump 备份",
            Reason::EngagementNotFound => {
                "该审计项目尚未报送到交换平台，请先报送审计项目后再报送审计发现的问题"
            }
            Reason::DeviationReasonRequired => {
                "答复意见轻于按规则生成的意见草稿，须说明理由（deviation_reason）"
            }
            Reason::Internal => "服务器内部错误，请联系交换平台运维人员",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The `ErrorInfo` reason sent to the caller.
    pub fn reason(&self) -> Reason {
        match self {
            Error::NotFound(_) => Reason::NotFound,
            Error::AlreadyExists(_) => Reason::AlreadyExists,
            Error::CadreNotAccessible => Reason::CadreNotAccessible,
            Error::PermissionDenied { reason, .. }
            | Error::FailedPrecondition { reason, .. }
            | Error::Aborted { reason, .. }
            | Error::ResourceExhausted { reason, .. } => *reason,
            Error::Unauthenticated(_) => Reason::Unauthenticated,
            Error::InvalidArgument { .. } => Reason::InvalidArgument,
            Error::MalformedRequest(_) => Reason::MalformedRequest,
            Error::UnsupportedEncoding(_) => Reason::UnsupportedEncoding,
            Error::MessageTooLarge(_) => Reason::MessageTooLarge,
            Error::CursorExpired { .. } => Reason::CursorExpired,
            Error::DeviationReasonRequired { .. } => Reason::DeviationReasonRequired,
            Error::Unavailable(_) => Reason::StoreUnavailable,
            Error::Internal(_) => Reason::Internal,
        }
    }

    /// The message sent to the caller: never a server fault's detail.
    pub fn public_message(&self) -> String {
        match self {
            Error::NotFound(what) => format!("{what} not found"),
            Error::AlreadyExists(what) => format!("{what} already exists"),
            Error::CadreNotAccessible => {
                "cadre does not exist or is outside the caller's jurisdiction".to_string()
            }
            Error::PermissionDenied { message, .. }
            | Error::FailedPrecondition { message, .. }
            | Error::Aborted { message, .. }
            | Error::ResourceExhausted { message, .. } => message.clone(),
            Error::Unauthenticated(m) => m.clone(),
            // Many clients show only the message, so it names the first
            // offending field and why; the full list stays in BadRequest.
            Error::InvalidArgument { violations } => match violations.first() {
                Some(v) if v.field.is_empty() => v.description.clone(),
                Some(v) => format!("{}: {}", v.field, v.description),
                None => "request has invalid fields".to_string(),
            },
            Error::MalformedRequest(detail) => {
                format!("the request body does not decode as this method's request message: {detail}")
            }
            Error::UnsupportedEncoding(detail) | Error::MessageTooLarge(detail) => detail.clone(),
            Error::CursorExpired { .. } => {
                "the cursor is older than the retained changes or from another store epoch; re-snapshot with ListRecords".to_string()
            }
            Error::DeviationReasonRequired { draft } => format!(
                "deviation_reason: required, the verdict is less severe than the rules' draft ({draft})"
            ),
            Error::Unavailable(_) => "service temporarily unavailable; retry".to_string(),
            Error::Internal(_) => "internal error".to_string(),
        }
    }

    /// Logs server faults with their detail; the caller sees only `public_message`.
    pub fn log_fault(&self) {
        match self {
            Error::Unavailable(detail) => tracing::warn!(error = %detail, "store unavailable"),
            Error::Internal(source) => tracing::error!(error = ?source, "internal error"),
            _ => {}
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let code = e.code();
        e.log_fault();
        let mut details = ErrorDetails::new();
        let mut metadata = std::collections::HashMap::new();
        match &e {
            Error::CursorExpired { oldest } => {
                metadata.insert("oldest_cursor".to_string(), oldest.clone());
            }
            Error::DeviationReasonRequired { draft } => {
                metadata.insert("draft_verdict".to_string(), draft.to_string());
            }
            Error::InvalidArgument { violations } => {
                for v in violations.iter().take(MAX_VIOLATIONS) {
                    details.add_bad_request_violation(clip(&v.field), clip(&v.description));
                }
                if violations.len() > MAX_VIOLATIONS {
                    details.add_bad_request_violation(
                        "",
                        format!(
                            "{} more violations not shown",
                            violations.len() - MAX_VIOLATIONS
                        ),
                    );
                }
            }
            // Whether a cut-off commit landed is unknown, so the client resends the
            // same request id: a landed write replays, a lost one is done anew.
            Error::Unavailable(_) => {
                details.set_retry_info(Some(RETRY_DELAY));
            }
            Error::ResourceExhausted { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
            }
            Error::NotFound(_)
            | Error::AlreadyExists(_)
            | Error::CadreNotAccessible
            | Error::PermissionDenied { .. }
            | Error::Unauthenticated(_)
            | Error::FailedPrecondition { .. }
            | Error::Aborted { .. }
            | Error::MalformedRequest(_)
            | Error::UnsupportedEncoding(_)
            | Error::MessageTooLarge(_)
            | Error::Internal(_) => {}
        }
        let reason = e.reason();
        details.set_error_info(reason.as_str(), DOMAIN, metadata);
        details.set_localized_message("zh-CN", localized(&e, reason));
        Status::with_error_details(code, clip(&e.public_message()), details)
    }
}

/// The zh-CN message: the reason's, except that an INVALID_ARGUMENT names its
/// first field and how many there are, as the English message does, because
/// many clients show only one message and an operator must know what to fix.
fn localized(e: &Error, reason: Reason) -> String {
    match e {
        Error::InvalidArgument { violations } => match violations.first() {
            Some(first) if !first.field.is_empty() => {
                let more = match violations.len() {
                    1 => String::new(),
                    n => format!("（共 {n} 处）"),
                };
                format!(
                    "字段 {} 不符合要求{more}，请按字段说明更正后重试",
                    clip(&first.field)
                )
            }
            _ => reason.localized().to_string(),
        },
        _ => reason.localized().to_string(),
    }
}

/// Violations a status carries at most; the rest are counted.
const MAX_VIOLATIONS: usize = 12;
/// Characters kept of a message, field path or description.
const MAX_TEXT: usize = 120;

/// Status message and details travel as HTTP/2 trailers, which clients refuse
/// beyond a header-list limit (16 KiB is common). Messages may echo client
/// input (a name, a mask path), so each is cut to keep the whole status well
/// below that, whatever the request held.
fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod sqlstate_tests {
    use super::*;

    #[test]
    fn transient_sqlstates_are_retryable_and_others_are_not() {
        for code in ["08000", "08006", "08P01", "57P01", "57P02", "57P03"] {
            assert!(
                matches!(transient_sqlstate(code), Some(Transient::Unavailable)),
                "{code}"
            );
        }
        for code in ["40001", "40P01"] {
            assert!(
                matches!(transient_sqlstate(code), Some(Transient::Aborted)),
                "{code}"
            );
        }
        // Unique violation, syntax error, disk full: not the client's to retry.
        for code in ["23505", "42601", "53100", "5"] {
            assert!(transient_sqlstate(code).is_none(), "{code}");
        }
        let status = Status::from(Error::from(sqlx::Error::PoolTimedOut));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status.get_details_error_info().map(|i| i.reason).as_deref(),
            Some("STORE_UNAVAILABLE")
        );
        assert!(status.get_details_retry_info().is_some());
    }
}
