//! Caller identity: who is calling (subject), in what role, for which jurisdiction.
//!
//! One interceptor ([`Authenticator`]) reads `authorization: Bearer <JWT>` (HS256, issuer
//! `einfo`) and puts a [`Caller`] in the request's extensions; handlers read it with
//! [`caller`]. A request without a token passes the interceptor (health and reflection need no
//! identity) and is refused by any handler that asks for a caller. This is the seam for the full
//! security model (mutual TLS, per-province keys) that comes later.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock as _;

use einfo_domain::Jurisdiction;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, Reason};

const ISSUER: &str = "einfo";

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A provincial operator: keeps the province's register.
    Operator,
    /// A provincial inspector.
    Inspector,
    /// A provincial reporting officer.
    Reporter,
    /// Another einfo service acting for a jurisdiction (e.g. inspection calling registry).
    Service,
    /// A central administrator.
    CentralAdmin,
    /// A central analyst (reads everything, writes nothing).
    CentralAnalyst,
    /// The node itself (time-driven transitions). Never issued in a token.
    System,
}

impl Role {
    /// The name used in tokens and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Inspector => "inspector",
            Role::Reporter => "reporter",
            Role::Service => "service",
            Role::CentralAdmin => "central-admin",
            Role::CentralAnalyst => "central-analyst",
            Role::System => "system",
        }
    }

    /// Whether the role acts for the centre.
    pub fn is_central(self) -> bool {
        matches!(self, Role::CentralAdmin | Role::CentralAnalyst)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "operator" => Role::Operator,
            "inspector" => Role::Inspector,
            "reporter" => Role::Reporter,
            "service" => Role::Service,
            "central-admin" => Role::CentralAdmin,
            "central-analyst" => Role::CentralAnalyst,
            other => return Err(format!("unknown role '{other}'")),
        })
    }
}

/// The identity of a request, established once by [`Authenticator`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Token subject.
    pub subject: String,
    /// Role.
    pub role: Role,
    /// Jurisdiction the caller acts for.
    pub jurisdiction: Jurisdiction,
}

impl Caller {
    /// The node itself, for time-driven transitions.
    pub fn system(jurisdiction: Jurisdiction) -> Self {
        Caller { subject: "system".into(), role: Role::System, jurisdiction }
    }

    /// Refuses unless the caller may write records of `target`: only a provincial caller of that
    /// same jurisdiction (or the node itself) writes a province's records.
    pub fn authorize_write(&self, target: &Jurisdiction) -> ApiResult<()> {
        if self.role.is_central() {
            return Err(ApiError::new(
                Reason::RoleNotAllowed,
                format!("role {} may not change the records of {target}", self.role),
            ));
        }
        if &self.jurisdiction != target {
            return Err(ApiError::new(
                Reason::NotYourJurisdiction,
                format!("caller acts for {} and may not change the records of {target}", self.jurisdiction),
            ));
        }
        Ok(())
    }

    /// Refuses unless the caller may read records of `target`: the centre reads all, a province its own.
    pub fn authorize_read(&self, target: &Jurisdiction) -> ApiResult<()> {
        if self.role.is_central() || &self.jurisdiction == target {
            Ok(())
        } else {
            Err(ApiError::new(
                Reason::NotYourJurisdiction,
                format!("caller acts for {} and may not read the records of {target}", self.jurisdiction),
            ))
        }
    }

    /// The identity used to scope idempotency keys: subject and jurisdiction.
    pub fn scope(&self) -> String {
        format!("{}@{}", self.subject, self.jurisdiction)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    jur: String,
    iss: String,
    iat: u64,
    exp: u64,
}

/// Signs and checks bearer tokens with one shared secret (HS256).
#[derive(Clone)]
pub struct TokenKeys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys from a secret of at least 32 bytes.
    pub fn from_secret(secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(secret.len() >= 32, "the token secret must be at least 32 bytes");
        Ok(Self {
            encoding: Arc::new(EncodingKey::from_secret(secret)?),
            decoding: Arc::new(DecodingKey::from_secret(secret)?),
        })
    }

    /// Issues a token for `caller`, valid for `ttl`.
    pub fn issue(&self, caller: &Caller, ttl: Duration) -> anyhow::Result<String> {
        anyhow::ensure!(caller.role != Role::System, "no token is issued for the system role");
        // Tokens are checked against the system clock by jsonwebtoken, so they are issued by it.
        let now = u64::try_from(crate::clock::SystemClock.now().timestamp())?;
        let claims = Claims {
            sub: caller.subject.clone(),
            role: caller.role.as_str().into(),
            jur: caller.jurisdiction.to_string(),
            iss: ISSUER.into(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// Checks a token and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| format!("invalid token: {e}"))?;
        let c = data.claims;
        let role: Role = c.role.parse()?;
        let jurisdiction = Jurisdiction::parse(&c.jur).map_err(|e| format!("invalid token jurisdiction: {e}"))?;
        if role.is_central() != jurisdiction.is_central() {
            return Err(format!("role {role} does not act for {jurisdiction}"));
        }
        Ok(Caller { subject: c.sub, role, jurisdiction })
    }
}

/// The interceptor that establishes the [`Caller`] of every request.
#[derive(Clone, Debug)]
pub struct Authenticator {
    keys: TokenKeys,
}

impl Authenticator {
    /// With these keys.
    pub fn new(keys: TokenKeys) -> Self {
        Self { keys }
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(value) = req.metadata().get("authorization") else {
            return Ok(req);
        };
        let value = value.to_str().map_err(|_| tonic::Status::unauthenticated("authorization header is not ASCII"))?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or_else(|| tonic::Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
        let caller = self.keys.verify(token).map_err(tonic::Status::unauthenticated)?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// The caller of a request, or `UNAUTHENTICATED`.
pub fn caller<T>(req: &tonic::Request<T>) -> ApiResult<Caller> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::new(Reason::Unauthenticated, "a bearer token is required"))
}

/// Adds `authorization: Bearer <token>` to outgoing requests.
#[derive(Clone)]
pub struct BearerToken(pub tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    /// From a token string.
    pub fn new(token: &str) -> anyhow::Result<Self> {
        Ok(Self(format!("Bearer {token}").parse()?))
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        crate::trace_context::inject_current(req.metadata_mut());
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(&[7u8; 32]).unwrap()
    }

    #[test]
    fn a_token_round_trips_to_the_same_caller() {
        let c = Caller {
            subject: "op1".into(),
            role: Role::Operator,
            jurisdiction: Jurisdiction::parse("provinces/2008-01").unwrap(),
        };
        let t = keys().issue(&c, Duration::from_secs(60)).unwrap();
        assert_eq!(keys().verify(&t).unwrap(), c);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let c = Caller {
            subject: "op1".into(),
            role: Role::Operator,
            jurisdiction: Jurisdiction::parse("provinces/2008-01").unwrap(),
        };
        let t = TokenKeys::from_secret(&[8u8; 32]).unwrap().issue(&c, Duration::from_secs(60)).unwrap();
        let mut req = tonic::Request::new(());
        req.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
        let err = Authenticator::new(keys()).call(req).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn a_province_writes_only_its_own_jurisdiction() {
        let hn = Jurisdiction::parse("provinces/2008-01").unwrap();
        let hcm = Jurisdiction::parse("provinces/2008-79").unwrap();
        let c = Caller { subject: "op1".into(), role: Role::Operator, jurisdiction: hn };
        assert!(c.authorize_write(&hn).is_ok());
        assert_eq!(c.authorize_write(&hcm).unwrap_err().reason, Reason::NotYourJurisdiction);
    }
}
