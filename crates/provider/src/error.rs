//! Errors as OpenAI shapes them: a status code and `{"error": {...}}`.

use agora_api::ErrorBody;
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something impossible (400).
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The offending parameter.
        param: Option<&'static str>,
        /// A machine-readable code.
        code: Option<&'static str>,
    },
    /// No such model here (404).
    #[error("the model '{0}' does not exist or is not served here")]
    ModelNotFound(String),
    /// No such route (404).
    #[error("no route {0}")]
    NotFound(String),
    /// The body is larger than the server accepts (413).
    #[error("request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The voucher is missing or does not cover the request (402).
    #[error("{0}")]
    Payment(#[from] crate::payments::PaymentError),
    /// The engine's queue is full (429).
    #[error("the provider is at capacity; retry shortly")]
    Overloaded,
    /// Something failed on our side (500); details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 about `param`.
    pub fn bad(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param,
            code: None,
        }
    }

    /// A 400 refusal by the governed safety policy, naming the rule.
    pub fn policy(refusal: agora_policy::Refusal) -> Self {
        ApiError::BadRequest {
            message: refusal.message,
            param: Some(refusal.param),
            code: Some("policy_violation"),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::ModelNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Payment(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ErrorBody {
        let message = self.to_string();
        match self {
            ApiError::BadRequest { param, code, .. } => {
                ErrorBody::new(message, "invalid_request_error", *param, *code)
            }
            ApiError::ModelNotFound(_) => ErrorBody::new(
                message,
                "invalid_request_error",
                Some("model"),
                Some("model_not_found"),
            ),
            ApiError::NotFound(_) => {
                ErrorBody::new(message, "invalid_request_error", None, Some("not_found"))
            }
            ApiError::TooLarge { .. } => ErrorBody::new(
                message,
                "invalid_request_error",
                None,
                Some("request_too_large"),
            ),
            ApiError::Payment(_) => {
                ErrorBody::new(message, "payment_error", None, Some("payment_required"))
            }
            ApiError::Overloaded => {
                ErrorBody::new(message, "rate_limit_error", None, Some("overloaded"))
            }
            ApiError::Internal(_) => ErrorBody::new(message, "server_error", None, None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(target: "agora::provider", %detail, "internal error");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if matches!(self, ApiError::Overloaded) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<agora_engine::Error> for ApiError {
    fn from(err: agora_engine::Error) -> Self {
        use agora_engine::Error as E;
        match err {
            E::ContextOverflow { .. } => ApiError::BadRequest {
                message: err.to_string(),
                param: Some("messages"),
                code: Some("context_length_exceeded"),
            },
            E::InvalidRequest(_) | E::BadToken(_) | E::Template(_) => {
                ApiError::bad(err.to_string(), None)
            }
            E::QueueFull => ApiError::Overloaded,
            other => ApiError::Internal(other.to_string()),
        }
    }
}
