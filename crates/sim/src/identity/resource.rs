//! The APIs the sim issues tokens for, the identifiers that name each (scope or resource), and
//! the app roles a token for each carries.

use serde::Serialize;

/// An API behind the sim. Each checks that a token was issued for it (`aud`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// Microsoft Graph (the Threat Intelligence API).
    Graph,
    /// Azure Resource Manager's audience, which the Sentinel upload API takes.
    Management,
    /// The Defender for Endpoint API (`WindowsDefenderATP`).
    Defender,
}

impl Api {
    /// The resource identifiers (App ID URIs) that name this API. Graph: docs
    /// `concepts/auth-v2-service.md`. Management: the Sentinel upload page lists exactly these
    /// two, each with and without a trailing slash. Defender: `exposed-apis-create-app-webapp.md`
    /// uses both.
    pub fn identifiers(self) -> &'static [&'static str] {
        match self {
            Api::Graph => &["https://graph.microsoft.com"],
            Api::Management => &[
                "https://management.azure.com",
                "https://management.core.windows.net",
            ],
            Api::Defender => &[
                "https://api.securitycenter.microsoft.com",
                "https://securitycenter.onmicrosoft.com/windowsatpservice",
            ],
        }
    }

    /// Whether `audience` names this API (case-insensitive, trailing slash optional).
    pub fn accepts(self, audience: &str) -> bool {
        let audience = audience.trim_end_matches('/');
        self.identifiers()
            .iter()
            .any(|id| id.eq_ignore_ascii_case(audience))
    }

    /// The API a resource identifier names.
    pub fn for_resource(resource: &str) -> Option<Api> {
        [Api::Graph, Api::Management, Api::Defender]
            .into_iter()
            .find(|api| api.accepts(resource))
    }
}

/// A v2 `scope`: `{resource}/.default`, as the client credentials grant requires.
#[derive(Debug, PartialEq, Eq)]
pub enum ScopeProblem {
    /// No `/.default` suffix (AADSTS1002012).
    NotDefault,
    /// A resource the sim does not serve (AADSTS500011).
    UnknownResource(String),
}

/// The API and the token audience for a client-credentials `scope`.
pub fn parse_scope(scope: &str) -> Result<(Api, String), ScopeProblem> {
    let resource = scope
        .strip_suffix("/.default")
        .ok_or(ScopeProblem::NotDefault)?;
    Api::for_resource(resource)
        .map(|api| (api, resource.to_owned()))
        .ok_or_else(|| ScopeProblem::UnknownResource(resource.to_owned()))
}

/// The app roles the sim's app (and managed identities) hold on each API.
#[derive(Clone, Debug)]
pub struct Roles {
    pub graph: Vec<String>,
    pub defender: Vec<String>,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            graph: vec!["ThreatIntelligence.Read.All".into()],
            defender: vec!["Ti.ReadWrite.All".into()],
        }
    }
}

impl Roles {
    /// The `roles` claim of a token for `api`. Management tokens carry none: Sentinel's
    /// permission is an Azure role assignment on the workspace, not an app role.
    pub fn for_api(&self, api: Api) -> Vec<String> {
        match api {
            Api::Graph => self.graph.clone(),
            Api::Defender => self.defender.clone(),
            Api::Management => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_resources() {
        assert_eq!(
            parse_scope("https://management.azure.com/.default"),
            Ok((Api::Management, "https://management.azure.com".into()))
        );
        assert_eq!(
            parse_scope("https://api.securitycenter.microsoft.com/.default").map(|r| r.0),
            Ok(Api::Defender)
        );
        assert_eq!(
            parse_scope("https://graph.microsoft.com/User.Read"),
            Err(ScopeProblem::NotDefault)
        );
        assert_eq!(
            parse_scope("https://vault.azure.net/.default"),
            Err(ScopeProblem::UnknownResource(
                "https://vault.azure.net".into()
            ))
        );
        assert_eq!(
            Api::for_resource("https://management.core.windows.net/"),
            Some(Api::Management)
        );
        assert!(Api::Management.accepts("https://MANAGEMENT.azure.com/"));
        assert!(!Api::Graph.accepts("https://management.azure.com"));
        assert!(!Api::Management.accepts("https://management.azure.com.evil"));
    }
}
