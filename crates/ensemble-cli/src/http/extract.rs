//! The routes' extractors: `Json` and `Path` as axum's, but a request they refuse gets an
//! `ApiError` (JSON with a code) with the status axum gives, instead of axum's plain text.
//! The only place axum's rejections are turned into answers; [`query_params`] reads the query
//! parameters a route takes, refusing the others.

use std::collections::BTreeMap;

use axum::extract::rejection::{
    BytesRejection, FailedToBufferBody, JsonRejection, PathRejection, QueryRejection,
};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{ApiError, Code};

/// A JSON body (extractor) or answer (response).
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejected(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejected(rejection)),
        }
    }
}

fn json_rejected(r: JsonRejection) -> ApiError {
    let code = match &r {
        JsonRejection::JsonSyntaxError(_) => Code::MalformedJson,
        JsonRejection::JsonDataError(_) => Code::InvalidBody,
        JsonRejection::MissingJsonContentType(_) => Code::UnsupportedMediaType,
        JsonRejection::BytesRejection(BytesRejection::FailedToBufferBody(
            FailedToBufferBody::LengthLimitError(_),
        )) => Code::BodyTooLarge,
        JsonRejection::BytesRejection(_) => Code::BodyUnreadable,
        _ => Code::InvalidRequest,
    };
    ApiError::new(r.status(), code, r.body_text())
}

fn path_rejected(r: PathRejection) -> ApiError {
    let code = match &r {
        PathRejection::FailedToDeserializePathParams(_) => Code::InvalidPath,
        PathRejection::MissingPathParams(_) => Code::Internal,
        _ => Code::InvalidRequest,
    };
    ApiError::new(r.status(), code, r.body_text())
}

/// The query parameters of a route that takes those named in `allowed`, each at most once:
/// their values by name, or 400 with `code` for a malformed query, a parameter given twice or
/// one the route does not take (named, cut at 64 characters).
pub fn query_params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    route: &str,
    allowed: &[&'static str],
    code: Code,
) -> Result<BTreeMap<&'static str, String>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, code, m);
    let Query(params) = query.map_err(|r| bad(r.body_text()))?;
    let mut found = BTreeMap::new();
    for (key, value) in params {
        let Some(name) = allowed.iter().copied().find(|a| *a == key) else {
            return Err(bad(format!(
                "unknown parameter {:?}: {route} takes {}",
                key.chars().take(64).collect::<String>(),
                allowed.join(" and ")
            )));
        };
        if found.insert(name, value).is_some() {
            return Err(bad(format!("{name} given twice")));
        }
    }
    Ok(found)
}
