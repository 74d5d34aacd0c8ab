//! Staff accounts and sign-in (`einfo.auth.v1.AuthService/Login`).
//!
//! A person's account is held by the issuer of their jurisdiction — a province's node for its
//! staff, the centre's gateway for central staff — in the `accounts` table of its database. The
//! password is kept as an argon2id hash (PHC string, random salt), never in clear and never
//! logged. `Login` exchanges it for a bearer token of the account's role and jurisdiction, signed
//! as the server signs its own calls (its certificate's key, which signs only for the
//! jurisdictions it names, or the shared secret), valid for [`LOGIN_TTL`] at most.
//! `einfo user add|disable|list` keep the accounts on the server's database.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use einfo_domain::Jurisdiction;
use einfo_proto::auth::v1::auth_service_server::{AuthService as Api, AuthServiceServer};
use einfo_proto::auth::v1::{LoginRequest, LoginResponse};
use sea_orm::ConnectionTrait;
use tonic::{Request, Response, Status};

use crate::auth::{Caller, Role, Signer};
use crate::db::{Database, from_micros, micros, stmt};
use crate::error::{ApiError, ApiResult, Reason};

/// The longest a sign-in's token lives (a working day), or the server's maximum if shorter.
pub const LOGIN_TTL: Duration = Duration::from_secs(8 * 3600);
/// The shortest password taken.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A staff account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its name (lower-case letters, digits, `.`, `_`, `-`).
    pub username: String,
    /// The jurisdiction it acts for.
    pub jurisdiction: Jurisdiction,
    /// Its role.
    pub role: Role,
    /// Disabled accounts cannot sign in.
    pub disabled: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// The argon2id hash of `password` with a fresh salt (a PHC string).
///
/// # Errors
/// Hashing failed (it does not, for a password of sane length).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&random).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("{e}"))?.to_string())
}

/// Whether `password` is the one `hash` was made from.
pub fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash no password matches, checked for an unknown username so that it costs as long as a
/// wrong password (the answer does not tell which it was, nor does its time).
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("no account has this password").expect("a hash"))
}

fn check_new(username: &str, jurisdiction: &Jurisdiction, role: Role, password: &str) -> ApiResult<()> {
    let mut v = crate::error::Violations::new();
    if username.is_empty()
        || username.len() > 64
        || !username.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    {
        v.add("username", "1 to 64 of a-z, 0-9, '.', '_', '-'");
    }
    let fits = match role {
        Role::Operator | Role::Inspector | Role::Reporter => *jurisdiction != Jurisdiction::Central,
        Role::CentralAdmin | Role::CentralAnalyst => *jurisdiction == Jurisdiction::Central,
        Role::Service | Role::System => false,
    };
    if !fits {
        v.add("role", format!("a person's role for {jurisdiction} is not {role}"));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        v.add("password", format!("at least {MIN_PASSWORD_CHARS} characters"));
    }
    v.finish()
}

/// Adds an account.
///
/// # Errors
/// A malformed username, a role a person of that jurisdiction cannot hold, a short password, or
/// a username taken (`ALREADY_EXISTS`).
pub async fn add<C: ConnectionTrait>(
    c: &C,
    username: &str,
    jurisdiction: &Jurisdiction,
    role: Role,
    password: &str,
    now: DateTime<Utc>,
) -> ApiResult<Account> {
    check_new(username, jurisdiction, role, password)?;
    let hash = hash_password(password).map_err(ApiError::internal)?;
    let done = c
        .execute_raw(stmt(
            c.get_database_backend(),
            "INSERT INTO accounts (username, jurisdiction, role, password_hash, disabled, created_at)
             VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT DO NOTHING",
            [username.into(), jurisdiction.to_string().into(), role.as_str().into(), hash.into(), micros(now).into()],
        ))
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::field_with(Reason::AlreadyExists, "username", format!("'{username}' is taken")));
    }
    Ok(Account { username: username.into(), jurisdiction: *jurisdiction, role, disabled: false, created_at: now })
}

/// Disables an account; `false` when there is none of that name.
///
/// # Errors
/// The database failed.
pub async fn disable<C: ConnectionTrait>(c: &C, username: &str) -> ApiResult<bool> {
    let done = c
        .execute_raw(stmt(
            c.get_database_backend(),
            "UPDATE accounts SET disabled = 1 WHERE username = $1",
            [username.into()],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Every account, by name.
///
/// # Errors
/// The database failed, or holds a row it cannot read.
pub async fn list<C: ConnectionTrait>(c: &C) -> ApiResult<Vec<Account>> {
    Ok(rows(c, None).await?.into_iter().map(|(a, _)| a).collect())
}

async fn rows<C: ConnectionTrait>(c: &C, username: Option<&str>) -> ApiResult<Vec<(Account, String)>> {
    let (sql, values): (&str, Vec<sea_orm::Value>) = match username {
        Some(u) => (
            "SELECT username, jurisdiction, role, disabled, created_at, password_hash FROM accounts WHERE username = $1",
            vec![u.into()],
        ),
        None => (
            "SELECT username, jurisdiction, role, disabled, created_at, password_hash FROM accounts ORDER BY username",
            vec![],
        ),
    };
    let rows = c.query_all_raw(stmt(c.get_database_backend(), sql, values)).await?;
    rows.iter()
        .map(|r| {
            let j: String = r.try_get_by_index(1)?;
            let role: String = r.try_get_by_index(2)?;
            Ok((
                Account {
                    username: r.try_get_by_index(0)?,
                    jurisdiction: Jurisdiction::parse(&j).map_err(ApiError::internal)?,
                    role: role.parse().map_err(|e: String| ApiError::internal(anyhow::anyhow!(e)))?,
                    disabled: r.try_get_by_index::<i32>(3)? != 0,
                    created_at: from_micros(r.try_get_by_index(4)?),
                },
                r.try_get_by_index(5)?,
            ))
        })
        .collect()
}

/// `einfo.auth.v1.AuthService`: signs the staff of the jurisdictions this server issues tokens
/// for.
#[derive(Clone)]
pub struct AuthService {
    db: Database,
    signer: Signer,
    issues_for: Arc<HashSet<Jurisdiction>>,
    ttl: Duration,
}

impl AuthService {
    /// Signing in the staff of `issues_for` with `signer`; tokens live [`LOGIN_TTL`], or the
    /// signer's maximum if shorter.
    pub fn new(db: Database, signer: Signer, issues_for: impl IntoIterator<Item = Jurisdiction>) -> Self {
        let ttl = LOGIN_TTL.min(signer.max_lifetime());
        Self { db, signer, issues_for: Arc::new(issues_for.into_iter().collect()), ttl }
    }

    /// The tonic server.
    pub fn into_server(self) -> AuthServiceServer<Self> {
        AuthServiceServer::new(self)
    }

    async fn login(&self, r: LoginRequest) -> ApiResult<LoginResponse> {
        let j = Jurisdiction::parse(&r.jurisdiction).map_err(|e| ApiError::field("jurisdiction", e.to_string()))?;
        if !self.issues_for.contains(&j) {
            return Err(ApiError::new(
                Reason::NotYourJurisdiction,
                format!("this server signs in the staff of {}, not of {j}", self.names()),
            ));
        }
        let found = rows(self.db.conn(), Some(&r.username)).await?.into_iter().next();
        let hash = found.as_ref().map_or_else(|| decoy().to_owned(), |(_, h)| h.clone());
        let password = r.password;
        let matches = tokio::task::spawn_blocking(move || password_matches(&hash, &password))
            .await
            .map_err(ApiError::internal)?;
        let wrong = || ApiError::new(Reason::Unauthenticated, "wrong username or password");
        let Some((account, _)) = found.filter(|_| matches) else { return Err(wrong()) };
        if account.disabled {
            return Err(ApiError::new(Reason::Unauthenticated, format!("account '{}' is disabled", account.username)));
        }
        if account.jurisdiction != j {
            return Err(ApiError::new(
                Reason::NotYourJurisdiction,
                format!("account '{}' acts for {}, not for {j}", account.username, account.jurisdiction),
            ));
        }
        let caller = Caller { subject: account.username.clone(), role: account.role, jurisdiction: j };
        let token = self.signer.issue(&caller, self.ttl).map_err(ApiError::internal)?;
        let expires = self.db.now() + chrono::Duration::from_std(self.ttl).unwrap_or_default();
        tracing::info!(username = %account.username, role = %account.role, jurisdiction = %j, "signed in");
        Ok(LoginResponse {
            token,
            expire_time: Some(prost_types::Timestamp { seconds: expires.timestamp(), nanos: 0 }),
            role: account.role.as_str().into(),
            jurisdiction: j.to_string(),
        })
    }

    fn names(&self) -> String {
        let mut n: Vec<String> = self.issues_for.iter().map(ToString::to_string).collect();
        n.sort();
        n.join(", ")
    }
}

#[tonic::async_trait]
impl Api for AuthService {
    async fn login(&self, req: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        Ok(Response::new(AuthService::login(self, req.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_kept_as_an_argon2id_hash_that_only_it_matches() {
        let h = hash_password("mật khẩu đủ dài 2014").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("mật khẩu"));
        assert!(password_matches(&h, "mật khẩu đủ dài 2014"));
        assert!(!password_matches(&h, "mật khẩu đủ dài 2015"));
        assert!(!password_matches("not a hash", "x"));
        assert_ne!(h, hash_password("mật khẩu đủ dài 2014").unwrap(), "a fresh salt each time");
        assert!(!password_matches(decoy(), ""));
    }

    #[test]
    fn an_account_is_refused_a_role_its_jurisdiction_cannot_hold_or_a_short_password() {
        let p01 = Jurisdiction::parse("provinces/2008-01").unwrap();
        assert!(check_new("so-01.operator", &p01, Role::Operator, "mười hai ký tự").is_ok());
        for (u, j, role, pw) in [
            ("Upper", p01, Role::Operator, "mười hai ký tự"),
            ("ok", p01, Role::CentralAdmin, "mười hai ký tự"),
            ("ok", Jurisdiction::Central, Role::Inspector, "mười hai ký tự"),
            ("ok", p01, Role::Service, "mười hai ký tự"),
            ("ok", p01, Role::Operator, "short"),
        ] {
            assert!(check_new(u, &j, role, pw).is_err(), "{u} {j} {role}");
        }
    }
}
