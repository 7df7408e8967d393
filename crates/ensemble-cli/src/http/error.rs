//! `ApiError`, the one error answer of every route: `{"error": "<message>", "code": "<code>"}`
//! with an HTTP status, and `Code`, the stable list of codes. Also the JSON answers to
//! unknown paths (404) and wrong methods (405).

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ensemble::proto::broadcast::BroadcastError;
use ensemble::{Error, TableError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::views::ErrorView;

/// The stable, snake_case `code` of an error answer. Programs branch on it; the `error`
/// message is for people and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// No route has this path (404).
    NotFound,
    /// The path exists, the method does not (405; `Allow` lists the methods).
    MethodNotAllowed,
    /// The body is not syntactically valid JSON (400).
    MalformedJson,
    /// The body is JSON, but not of the expected shape (422).
    InvalidBody,
    /// A JSON body without `Content-Type: application/json` (415).
    UnsupportedMediaType,
    /// The body is over the size limit (413).
    BodyTooLarge,
    /// The body could not be read (400).
    BodyUnreadable,
    /// A path segment does not parse (for example a partition reference that is no number; 400).
    InvalidPath,
    /// A request the extractors refused in a way not listed above.
    InvalidRequest,
    /// A fault of the agent itself (500).
    Internal,
    /// `POST`/`DELETE /v1/partitions` on an agent without `--allow-fault-injection` (403).
    FaultInjectionOff,
    /// `POST /v1/partitions` naming no node (400).
    NoNodes,
    /// `POST /v1/partitions` with a `ttl_ms` of 0 or over a day (400).
    BadTtl,
    /// The agent hosts no such table (404).
    TableNotHosted,
    /// The table holds no such key (404).
    KeyNotFound,
    /// `GET /v1/ready` while discovery is not ready (503).
    NotReady,
    /// The node has shut down.
    NodeStopped,
    /// The member is not live (unknown, down, left, or partitioned away).
    UnknownMember,
    /// No handler is registered under this name on that member.
    UnknownHandler,
    /// No acknowledgement came in time.
    AckTimeout,
    /// A message on a channel the agent did not declare.
    UnknownChannel,
    /// No injected partition has this reference.
    UnknownPartition,
    /// A user event's payload is over the broadcast limit, or a message or table write would
    /// not fit in one frame (413).
    PayloadTooLarge,
    /// Another refusal of the broadcast layer.
    BroadcastRefused,
    /// An argument the node refused (an empty event name, a bad member name).
    InvalidArgument,
    /// A table record is over the size limit.
    RecordTooLarge,
    /// The table's limit would be exceeded.
    TableFull,
    /// Some replicas did not answer in time.
    ReplicaTimeout,
    /// The member asked did not answer (in time, or with what was asked; 504 or 502).
    NoAnswer,
    /// A leader operation (`if_absent`, `serial`) found no table leader in time.
    LeaderUnavailable,
    /// Another failure of a table operation.
    TableFailed,
    /// Any other failure of the node.
    RequestFailed,
    /// No `Authorization: Bearer <token>` header, or the wrong token (401).
    Unauthorized,
    /// A request to an API on a loopback address naming another host (403; DNS rebinding).
    BadHost,
    /// A table name starting with `ensemble.`: Ensemble's own tables (403).
    ReservedTable,
    /// A handler name of Ensemble's own (`ensemble.*`).
    ReservedHandler,
    /// An empty table name, one over 128 bytes, or one with control characters (400).
    InvalidTableName,
    /// A put to a table the agent does not host, without `--allow-create-tables` (403).
    TableCreationOff,
    /// A put that would create a table beyond `max_tables` (403).
    TooManyTables,
    /// A member filter (`GET /v1/members?status=&name=&tag=`) that is not a valid regular
    /// expression, is too long or too large, an unknown event type (`GET /v1/events?types=`),
    /// or an unknown query parameter of either (400).
    InvalidFilter,
    /// The tags changed but the tags file could not be rewritten (500).
    TagsNotSaved,
    /// `GET /v1/monitor` while the most monitors at once are connected (429).
    TooManyMonitors,
}

impl Code {
    /// The code as it appears in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::MalformedJson => "malformed_json",
            Code::InvalidBody => "invalid_body",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::BodyTooLarge => "body_too_large",
            Code::BodyUnreadable => "body_unreadable",
            Code::InvalidPath => "invalid_path",
            Code::InvalidRequest => "invalid_request",
            Code::Internal => "internal",
            Code::FaultInjectionOff => "fault_injection_off",
            Code::NoNodes => "no_nodes",
            Code::BadTtl => "bad_ttl",
            Code::TableNotHosted => "table_not_hosted",
            Code::KeyNotFound => "key_not_found",
            Code::NotReady => "not_ready",
            Code::NodeStopped => "node_stopped",
            Code::UnknownMember => "unknown_member",
            Code::UnknownHandler => "unknown_handler",
            Code::AckTimeout => "ack_timeout",
            Code::UnknownChannel => "unknown_channel",
            Code::UnknownPartition => "unknown_partition",
            Code::PayloadTooLarge => "payload_too_large",
            Code::BroadcastRefused => "broadcast_refused",
            Code::InvalidArgument => "invalid_argument",
            Code::RecordTooLarge => "record_too_large",
            Code::TableFull => "table_full",
            Code::ReplicaTimeout => "replica_timeout",
            Code::LeaderUnavailable => "leader_unavailable",
            Code::NoAnswer => "no_answer",
            Code::TableFailed => "table_failed",
            Code::RequestFailed => "request_failed",
            Code::Unauthorized => "unauthorized",
            Code::BadHost => "bad_host",
            Code::ReservedTable => "reserved_table",
            Code::ReservedHandler => "reserved_handler",
            Code::InvalidTableName => "invalid_table_name",
            Code::TableCreationOff => "table_creation_off",
            Code::TooManyTables => "too_many_tables",
            Code::InvalidFilter => "invalid_filter",
            Code::TagsNotSaved => "tags_not_saved",
            Code::TooManyMonitors => "too_many_monitors",
        }
    }

    /// The code of a node's error (the status is the route's choice).
    pub fn of(e: &Error) -> Code {
        match e {
            Error::Stopped => Code::NodeStopped,
            Error::UnknownNode(_) => Code::UnknownMember,
            Error::UnknownName { .. } => Code::UnknownHandler,
            Error::Timeout { .. } => Code::AckTimeout,
            Error::UnknownChannel(_) => Code::UnknownChannel,
            Error::UnknownPartition(_) => Code::UnknownPartition,
            Error::Broadcast(BroadcastError::TooLarge { .. }) | Error::TooLarge { .. } => {
                Code::PayloadTooLarge
            }
            Error::ReservedName(_) => Code::ReservedTable,
            Error::ReservedHandler(_) => Code::ReservedHandler,
            Error::Broadcast(_) => Code::BroadcastRefused,
            Error::Config(_) | Error::Member(_) => Code::InvalidArgument,
            Error::Table(TableError::TooLarge { .. }) => Code::RecordTooLarge,
            Error::Table(TableError::Full { .. }) => Code::TableFull,
            Error::Table(TableError::Timeout(_)) => Code::ReplicaTimeout,
            Error::Table(TableError::LeaderUnavailable { .. }) => Code::LeaderUnavailable,
            Error::Table(_) | Error::Codec { .. } => Code::TableFailed,
            _ => Code::RequestFailed,
        }
    }
}

/// An error answer: a status, a code and a message, and for a few routes more fields.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Code,
    message: String,
    /// Fields answered beside `error` and `code` (`GET /v1/ready` keeps its own).
    details: Map<String, Value>,
}

impl ApiError {
    /// An answer with `status`, `code` and the message `message`.
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// The node's error `e`, answered with `status` and the code of `e`.
    pub fn node(status: StatusCode, e: Error) -> ApiError {
        ApiError::new(status, Code::of(&e), e.to_string())
    }

    /// Answers the fields of `details` (a JSON object) too.
    pub fn with_details(mut self, details: Value) -> ApiError {
        if let Value::Object(map) = details {
            self.details = map;
        }
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            view: ErrorView {
                error: self.message,
                code: self.code.as_str().to_owned(),
            },
            details: self.details,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// An error answer's body: `error` and `code` first, then any details.
#[derive(Serialize)]
struct Body {
    #[serde(flatten)]
    view: ErrorView,
    #[serde(flatten)]
    details: Map<String, Value>,
}

/// The router's fallback: no route has this path.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        format!("no route for {method} {}", uri.path()),
    )
}

/// A route's fallback for methods it does not take (axum adds the `Allow` header).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowed,
        format!("{} does not take {method}", uri.path()),
    )
}
