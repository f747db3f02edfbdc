//! Errors as OpenAI shapes them, plus the gateway's own: 401, 402 with a quote, 503 with why.

use agora_api::ErrorBody;
use axum::{
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use crate::routing::NoRoute;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or impossible request (400).
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The offending parameter.
        param: Option<&'static str>,
    },
    /// Refused by the governed safety policy (400), naming the rule.
    #[error("{}", .0.message)]
    Policy(agora_policy::Refusal),
    /// Unknown or malformed API key (401).
    #[error("invalid API key: send 'Authorization: Bearer <key>' with a key this gateway issued")]
    Unauthorized,
    /// No credit, or no key: pay first (402), with an x402-style quote.
    #[error("{message}")]
    PaymentRequired {
        /// Why.
        message: String,
        /// Base64 JSON quote for the `PAYMENT-REQUIRED` header.
        quote: String,
    },
    /// The model is not active on the ledger (404).
    #[error("the model '{0}' does not exist or is not active on the network")]
    ModelNotFound(String),
    /// No such route (404).
    #[error("no route {0}")]
    NotFound(String),
    /// Body too large (413).
    #[error("request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// No provider can take the request (503), and why.
    #[error("{0}")]
    NoRoute(NoRoute),
    /// The ledger node did not answer a query the route needs (503).
    #[error("ledger unreachable: {0}")]
    LedgerUnavailable(String),
    /// Every provider tried failed (502).
    #[error("{0}")]
    Upstream(String),
    /// A provider's own 4xx about the request, passed through.
    #[error("provider refused the request")]
    Forwarded {
        /// The provider's status.
        status: StatusCode,
        /// The provider's body (OpenAI-shaped).
        body: String,
    },
}

impl ApiError {
    /// A 400 about `param`.
    pub fn bad(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::Policy(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::PaymentRequired { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::ModelNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoRoute(_) | ApiError::LedgerUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Forwarded { status, .. } => *status,
        }
    }

    fn body(&self) -> ErrorBody {
        let message = self.to_string();
        let (kind, param, code) = match self {
            ApiError::BadRequest { param, .. } => ("invalid_request_error", *param, None),
            ApiError::Policy(refusal) => (
                "invalid_request_error",
                Some(refusal.param),
                Some("policy_violation"),
            ),
            ApiError::Unauthorized => ("authentication_error", None, Some("invalid_api_key")),
            ApiError::PaymentRequired { .. } => ("payment_error", None, Some("payment_required")),
            ApiError::ModelNotFound(_) => (
                "invalid_request_error",
                Some("model"),
                Some("model_not_found"),
            ),
            ApiError::NotFound(_) => ("invalid_request_error", None, Some("not_found")),
            ApiError::TooLarge { .. } => ("invalid_request_error", None, Some("request_too_large")),
            ApiError::NoRoute(_) => ("service_unavailable", None, Some("no_provider")),
            ApiError::LedgerUnavailable(_) => {
                ("service_unavailable", None, Some("ledger_unreachable"))
            }
            ApiError::Upstream(_) => ("server_error", None, Some("upstream_failed")),
            ApiError::Forwarded { .. } => ("invalid_request_error", None, None),
        };
        ErrorBody::new(message, kind, param, code)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Forwarded { status, body } = &self {
            if let Ok(parsed) = serde_json::from_str::<ErrorBody>(body) {
                return (*status, Json(parsed)).into_response();
            }
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let ApiError::PaymentRequired { quote, .. } = &self {
            if let Ok(value) = HeaderValue::from_str(quote) {
                response
                    .headers_mut()
                    .insert(agora_api::PAYMENT_REQUIRED_HEADER, value);
            }
        }
        if matches!(self, ApiError::NoRoute(_) | ApiError::LedgerUnavailable(_)) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
        }
        response
    }
}
