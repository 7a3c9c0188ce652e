//! Managed identity token endpoints: the Azure Instance Metadata Service form
//! (`GET /metadata/identity/oauth2/token`, header `Metadata: true`; Entra's
//! how-to-use-vm-token page) and the App Service / Container Apps form (`GET` on
//! `IDENTITY_ENDPOINT`, header `X-IDENTITY-HEADER`, `api-version=2019-08-01`; the Container
//! Apps managed-identity page). Both answer with every number as a JSON **string**.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::IdentityConfig;
use super::resource::Api;
use crate::auth::{CredentialKind, Grant, Tokens, json_response, unix_now};
use crate::json::ObjectWriter;
use crate::rng::guid;

/// The identities assigned to the "machine" the sim stands for.
#[derive(Clone, Debug)]
pub struct ManagedIdentities {
    /// Client id of the system-assigned identity; `None` = not enabled.
    pub system: Option<String>,
    /// Client ids of user-assigned identities.
    pub user_assigned: Vec<String>,
    /// The value `IDENTITY_HEADER` holds (App Service form).
    pub identity_header: String,
}

impl Default for ManagedIdentities {
    fn default() -> Self {
        ManagedIdentities {
            system: Some("sim-managed-identity".into()),
            user_assigned: Vec::new(),
            identity_header: "sim-identity-header".into(),
        }
    }
}

/// Which managed-identity endpoint a request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Imds,
    AppService,
}

impl Form {
    fn min_api_version(self) -> &'static str {
        match self {
            Form::Imds => "2018-02-01",
            Form::AppService => "2019-08-01",
        }
    }

    fn credential(self) -> CredentialKind {
        match self {
            Form::Imds => CredentialKind::ManagedIdentityImds,
            Form::AppService => CredentialKind::ManagedIdentityAppService,
        }
    }
}

/// A refusal in the form's error shape.
struct Refusal {
    status: StatusCode,
    /// IMDS `error` (e.g. `bad_request_102`).
    error: &'static str,
    message: String,
}

fn refuse(status: StatusCode, error: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        error,
        message: message.into(),
    }
}

impl Refusal {
    /// IMDS: `{"error","error_description"}` (documented). App Service:
    /// `{"statusCode","message","correlationId"}` (assumed; not documented).
    fn into_response(self, form: Form) -> Response {
        let id = guid(&mut rand::rng());
        let body = match form {
            Form::Imds => ObjectWriter::new()
                .str("error", self.error)
                .str("error_description", &self.message),
            Form::AppService => ObjectWriter::new()
                .num("statusCode", i64::from(self.status.as_u16()))
                .str("message", &self.message)
                .str("correlationId", &id),
        };
        json_response(self.status, body.finish(), &id)
    }
}

/// Answers a token request on either endpoint.
pub fn token(
    form: Form,
    identity: &IdentityConfig,
    tokens: &Tokens,
    tenant: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    now: Instant,
) -> Response {
    match grant(form, identity, tenant, query, headers) {
        Ok((grant, resource)) => {
            let client_id = grant.client_id.clone();
            let token = tokens.issue(now, grant);
            let ttl = tokens.ttl().as_secs();
            let issued = unix_now();
            let expires_on = issued.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
            let body = match form {
                Form::Imds => ObjectWriter::new()
                    .str("access_token", &token)
                    .str("refresh_token", "")
                    .str("expires_in", &ttl.to_string())
                    .str("expires_on", &expires_on.to_string())
                    .str("not_before", &issued.to_string())
                    .str("resource", &resource)
                    .str("token_type", "Bearer"),
                Form::AppService => ObjectWriter::new()
                    .str("access_token", &token)
                    .str("expires_on", &expires_on.to_string())
                    .str("resource", &resource)
                    .str("token_type", "Bearer")
                    .str("client_id", &client_id),
            };
            json_response(StatusCode::OK, body.finish(), &guid(&mut rand::rng()))
        }
        Err(refusal) => refusal.into_response(form),
    }
}

fn grant(
    form: Form,
    identity: &IdentityConfig,
    tenant: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Grant, String), Refusal> {
    let managed = &identity.managed;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match form {
        // "This value must be set to "true", in all lower case."
        Form::Imds if header("metadata") != Some("true") => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "bad_request_102",
                "Required metadata header not specified",
            ));
        }
        Form::AppService
            if header("x-identity-header") != Some(managed.identity_header.as_str()) =>
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The X-IDENTITY-HEADER header is missing or does not hold the value of IDENTITY_HEADER.",
            ));
        }
        _ => {}
    }
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let bad = |message: String| refuse(StatusCode::BAD_REQUEST, "invalid_request", message);

    let version = param("api-version")
        .ok_or_else(|| bad("Required query variable 'api-version' is missing".into()))?;
    // Versions are dates; a later one is accepted (the pages say "or later").
    if version < form.min_api_version() || version.len() < 10 {
        return Err(bad(format!(
            "Invalid api-version '{version}'; use {} or later",
            form.min_api_version()
        )));
    }
    let resource = param("resource")
        .ok_or_else(|| bad("Required query variable 'resource' is missing".into()))?;
    let selectors: Vec<&str> = [
        "client_id",
        "object_id",
        "principal_id",
        "msi_res_id",
        "mi_res_id",
    ]
    .into_iter()
    .filter(|name| param(name).is_some())
    .collect();
    let client_id = match selectors.as_slice() {
        [] => managed.system.clone(),
        ["client_id"] => param("client_id")
            .filter(|id| {
                managed.user_assigned.iter().any(|u| u == id)
                    || managed.system.as_deref() == Some(*id)
            })
            .map(str::to_owned),
        // The sim's identities have client ids only.
        [_] => None,
        _ => {
            return Err(bad(format!(
                "Only one of {} may be given",
                selectors.join(", ")
            )));
        }
    };
    let client_id = client_id.ok_or_else(|| bad("Identity not found".into()))?;
    let api = Api::for_resource(resource).ok_or_else(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            format!(
                "AADSTS50001: The application named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        )
    })?;
    Ok((
        Grant {
            api,
            audience: resource.to_owned(),
            roles: identity.roles.for_api(api),
            client_id,
            credential: form.credential(),
        },
        resource.to_owned(),
    ))
}
