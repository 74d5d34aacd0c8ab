//! People sign in: accounts held by the issuer of their jurisdiction (`einfo user add|disable|
//! list` on the server's database), `Login` exchanging a password for a short-lived token of the
//! account's role, and `einfo login` keeping it in a profile readable by its owner only.

use std::process::Stdio;

use einfo_proto::auth::v1 as authpb;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::registry::v1 as pb;
use einfo_testkit::process::einfo;
use einfo_testkit::{Backend, TestGateway, TestNode, both_backends};
use tokio::io::AsyncWriteExt as _;
use tonic::Code;

use crate::refusals::reason;

/// Runs `einfo` with `args`, `stdin` on its standard input; (success, stdout, stderr).
async fn run(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = einfo()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("einfo runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("written");
    drop(input);
    let out = child.wait_with_output().await.expect("einfo ends");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

async fn add(url: &str, username: &str, role: &str, jurisdiction: &str, password: &str) {
    let (ok, out, err) = run(
        &["user", "add", "--database-url", url, "--username", username, "--role", role, "--jurisdiction", jurisdiction],
        &format!("{password}\n"),
    )
    .await;
    assert!(ok, "einfo user add {username}: {out}{err}");
}

fn login(username: &str, password: &str, jurisdiction: &str) -> authpb::LoginRequest {
    authpb::LoginRequest { username: username.into(), password: password.into(), jurisdiction: jurisdiction.into() }
}

const P01: &str = "provinces/2008-01";
const P79: &str = "provinces/2008-79";
const PASSWORD: &str = "Sở 01 — mật khẩu đủ dài";

/// A node hosting 01 and 79 holds its provinces' staff. The right password gives a token of the
/// account's role for its province; a wrong password and an unknown name get one answer; a
/// disabled account, another province's account, or a province this node does not host are
/// refused; the password is kept only as an argon2id hash.
async fn a_provinces_staff_sign_in_at_its_node_and_only_there(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    let url = node.db.url.clone();
    add(&url, "so01.op", "operator", P01, PASSWORD).await;
    add(&url, "so79.op", "operator", P79, "Sở 79 — mật khẩu đủ dài").await;
    add(&url, "so01.gone", "inspector", P01, PASSWORD).await;
    let (ok, out, _) = run(&["user", "disable", "--database-url", &url, "--username", "so01.gone"], "").await;
    assert!(ok, "{out}");
    // Refused at once, changing nothing: a short password, a person's role the province cannot
    // hold, a name taken.
    for (args, says) in [
        (vec!["--username", "ngan", "--role", "operator", "--jurisdiction", P01], "password"),
        (vec!["--username", "x", "--role", "central-admin", "--jurisdiction", P01], "role"),
        (vec!["--username", "so01.op", "--role", "operator", "--jurisdiction", P01], "taken"),
    ] {
        let mut a = vec!["user", "add", "--database-url", &url];
        a.extend(args);
        let pw = if says == "password" { "ngắn\n" } else { "một mật khẩu đủ dài\n" };
        let (ok, out, err) = run(&a, pw).await;
        assert!(!ok && err.contains(says), "{says}: {out}{err}");
    }
    let (ok, listed, _) = run(&["user", "list", "--database-url", &url], "").await;
    assert!(ok);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines[0].starts_with("so01.gone") && lines[0].ends_with("disabled"), "{listed}");
    assert!(lines[1].starts_with("so01.op") && lines[1].contains("operator") && lines[1].contains(P01), "{listed}");
    // At rest: a hash, not the password.
    let db = node.db.connect().await;
    let rows = {
        use sea_orm::ConnectionTrait as _;
        db.conn()
            .query_all_raw(einfo_common::db::stmt(db.backend(), "SELECT password_hash FROM accounts", []))
            .await
            .expect("rows")
    };
    for r in rows {
        let h: String = r.try_get_by_index(0).expect("a hash");
        assert!(h.starts_with("$argon2id$") && !h.contains("mật khẩu"), "{h}");
    }
    db.close().await.expect("closed");

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr)).expect("url").connect_lazy();
    let mut auth = authpb::auth_service_client::AuthServiceClient::new(channel.clone());
    let got = auth.login(login("so01.op", PASSWORD, P01)).await.expect("signed in").into_inner();
    assert_eq!((got.role.as_str(), got.jurisdiction.as_str()), ("operator", P01));
    let expires =
        got.expire_time.expect("an expiry").seconds - einfo_common::clock::Clock::now(&*node.clock).timestamp();
    assert!((0..=8 * 3600 + 5).contains(&expires), "a token of hours: {expires} s");
    // The token is the account's: it works on 01's register and not on 79's.
    let bearer = einfo_common::auth::BearerToken::new(&got.token).expect("bearer");
    let mut registry = pb::registry_service_client::RegistryServiceClient::with_interceptor(channel.clone(), bearer);
    registry.list_sites(pb::ListSitesRequest { parent: P01.into(), ..Default::default() }).await.expect("01 reads");
    let e = registry
        .list_sites(pb::ListSitesRequest { parent: P79.into(), ..Default::default() })
        .await
        .expect_err("not 79");
    assert_eq!(e.code(), Code::PermissionDenied);

    let wrong = auth.login(login("so01.op", "not the password", P01)).await.expect_err("a wrong password");
    let unknown = auth.login(login("nobody", PASSWORD, P01)).await.expect_err("an unknown name");
    for e in [&wrong, &unknown] {
        assert_eq!((e.code(), e.message()), (Code::Unauthenticated, "wrong username or password"), "{e:?}");
    }
    let e = auth.login(login("so01.gone", PASSWORD, P01)).await.expect_err("disabled");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("disabled"), "{e:?}");
    let e = auth.login(login("so79.op", "Sở 79 — mật khẩu đủ dài", P01)).await.expect_err("another province's account");
    assert_eq!((e.code(), reason(&e).as_str()), (Code::PermissionDenied, "NOT_YOUR_JURISDICTION"), "{e:?}");
    let e = auth.login(login("so01.op", PASSWORD, "provinces/2008-02")).await.expect_err("a province not hosted");
    assert_eq!((e.code(), reason(&e).as_str()), (Code::PermissionDenied, "NOT_YOUR_JURISDICTION"), "{e:?}");
    let e = auth.login(login("so01.op", PASSWORD, "tỉnh 01")).await.expect_err("not a jurisdiction");
    assert_eq!(e.code(), Code::InvalidArgument);
    // The same person signing in for 79 with 79's account is fine.
    auth.login(login("so79.op", "Sở 79 — mật khẩu đủ dài", P79)).await.expect("79's account at 79");
}

/// Central staff sign in at the gateway, with `einfo login`, which keeps the token in a profile
/// readable by its owner only; a province's account cannot sign in there.
async fn central_staff_sign_in_at_the_gateway_with_einfo_login() {
    let Some(g) = TestGateway::start(Backend::Sqlite, &[]).await else { return };
    let db_url = g.db.url.clone();
    add(&db_url, "cuc.analyst", "central-analyst", "central", "Cục — mật khẩu đủ dài").await;
    add(&db_url, "lac.loi", "operator", P01, PASSWORD).await;
    let profile = g.db.dir.join("profile").join("profile.json");
    let args = [
        "login",
        "--server",
        &g.url(),
        "--username",
        "cuc.analyst",
        "--jurisdiction",
        "central",
        "--profile",
        profile.to_str().expect("utf-8"),
    ];
    let (ok, out, err) = run(&args, "Cục — mật khẩu đủ dài\n").await;
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("signed in as cuc.analyst (central-analyst of central) until "), "{out}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&profile).expect("the profile").permissions().mode() & 0o777, 0o600);
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&profile).expect("read")).expect("json");
    let token = kept["token"].as_str().expect("a token");
    assert!(!std::fs::read_to_string(&profile).unwrap().contains("mật khẩu"), "no password in the profile");
    let mut national = gw::national_service_client::NationalServiceClient::with_interceptor(
        tonic::transport::Endpoint::from_shared(g.url()).expect("url").connect_lazy(),
        einfo_common::auth::BearerToken::new(token).expect("bearer"),
    );
    national
        .get_replication_status(gw::GetReplicationStatusRequest {})
        .await
        .expect("the analyst's token reads the national view");

    let mut wrong_args = args;
    wrong_args[4] = "lac.loi";
    wrong_args[6] = P01;
    let (ok, _, err) = run(&wrong_args, &format!("{PASSWORD}\n")).await;
    assert!(!ok && err.contains("signs in the staff of central"), "{err}");
    let (ok, _, err) = run(&args, "sai mật khẩu\n").await;
    assert!(!ok && err.contains("wrong username or password"), "{err}");
}

both_backends!(
    a_provinces_staff_sign_in_at_its_node_and_only_there;
    plain: central_staff_sign_in_at_the_gateway_with_einfo_login
);
