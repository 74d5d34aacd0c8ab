//! The province's desk from a terminal: `einfo site …` against a node, as the operator runs it —
//! what it prints, and its exit codes (0 done, 1 refused with the field, 2 usage, 3 unreachable).

use std::path::{Path, PathBuf};

use einfo_testkit::process::einfo;
use einfo_testkit::{Backend, TestNode, both_backends};

/// A data directory the commands sign their tokens from, as `einfo up`'s would (its secret).
fn data_dir(node: &TestNode) -> PathBuf {
    let dir = node.db.dir.join("desk");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token-secret"), node.settings.auth.secret.clone().expect("the test secret")).unwrap();
    dir
}

/// Runs `einfo …` against `node` for province 01, with the data directory's token (and no
/// signed-in profile): (exit code, stdout, stderr).
async fn run(node: &TestNode, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = einfo()
        .args(args)
        .args(["--province", "01", "--node", &node.url(), "--profile"])
        .arg(dir.join("no-profile.json"))
        .arg("--data-dir")
        .arg(dir)
        .output()
        .await
        .expect("run einfo");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `einfo site …`: (exit code, stdout, stderr).
async fn site(node: &TestNode, dir: &Path, args: &[&str]) -> (i32, String, String) {
    run(node, dir, &[&["site"][..], args].concat()).await
}

/// `einfo …` that must succeed: its stdout.
async fn ok(node: &TestNode, dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(node, dir, args).await;
    assert_eq!(code, 0, "einfo {args:?}: {err}");
    out
}

/// Register, the same command again (done once), list, update, show, void; a refusal names its
/// field and exits 1, a bad argument exits 2, a node that does not answer exits 3.
async fn an_operator_keeps_the_register_from_a_terminal(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let dir = data_dir(&node);
    let register = [
        "register",
        "--name",
        "Tin tức Hà Nội",
        "--domain",
        "tintuc-hanoi.vn",
        "--domain",
        "báo-hànội.vn",
        "--owner",
        "Công ty Cổ phần Tin tức",
        "--tax-code",
        "0100109106",
        "--json",
    ];
    let (code, out, err) = site(&node, &dir, &register).await;
    assert_eq!(code, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(created["legal_status"], "unlicensed");
    assert_eq!(created["domains"], serde_json::json!(["tintuc-hanoi.vn", "báo-hànội.vn"]));
    let name = created["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("provinces/2008-01/sites/"), "{name}");
    let before = node.last_sequence("01").await;
    let (code, again, err) = site(&node, &dir, &register).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&again).unwrap()["name"], name.as_str(), "done once");
    assert_eq!(node.last_sequence("01").await, before, "the same command again writes nothing");

    // Refused: the server's field and reason, exit 1, nothing written.
    let mut bad = register.to_vec();
    bad[10] = "0100109107";
    bad[4] = "khac.vn";
    bad[6] = "khac2.vn";
    let (code, _, err) = site(&node, &dir, &bad).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("site.owner.tax_code: "), "the field is named: {err}");
    assert_eq!(node.last_sequence("01").await, before);

    let (code, table, err) = site(&node, &dir, &["list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("Tin tức Hà Nội") && table.contains("Hoạt động không phép"), "{table}");
    assert!(table.trim_end().ends_with("Tổng cộng: 1 trang"), "{table}");

    let id = name.rsplit('/').next().unwrap();
    let (code, out, err) = site(&node, &dir, &["update", id, "--state", "inactive", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["operational_state"], "inactive");
    let (code, out, err) =
        site(&node, &dir, &["correct", id, "--name", "Tin tức Hà Nội mới", "--reason", "Gõ sai tên", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["display_name"], "Tin tức Hà Nội mới");
    let (code, shown, err) = site(&node, &dir, &["show", &name]).await;
    assert_eq!(code, 0, "{err}");
    assert!(shown.contains("Tên miền    tintuc-hanoi.vn, báo-hànội.vn"), "{shown}");
    let (code, out, err) = site(&node, &dir, &["void", id, "--reason", "Nhập nhầm", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["voided"], true);

    // Usage: exit 2, before any call. Unreachable: exit 3.
    let (code, _, err) = site(&node, &dir, &["update", id]).await;
    assert_eq!(code, 2, "nothing to change: {err}");
    let (code, _, err) = site(&node, &dir, &["register", "--name", "x", "--owner", "y", "--tax-code", "1"]).await;
    assert_eq!(code, 2, "no --domain: {err}");
    let out = einfo()
        .args(["site", "list", "--province", "01", "--node", "http://127.0.0.1:9", "--data-dir"])
        .arg(&dir)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}

const HEADER: &str =
    "kind,display_name,domains,owner_kind,owner_name,owner_tax_code,hosting,operational_state,discovery_source,notes";

/// A file of seven rows, three bad: the dry run lists the three with their lines and fields and
/// changes nothing (the log's last sequence is unchanged); the import lands the four good rows
/// and lists the bad ones again; both exit 1, as some rows were refused.
async fn an_import_lists_every_bad_row_and_lands_the_good_ones(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let dir = data_dir(&node);
    let rows = [
        "general-website,Báo Hà Nội,baohanoi.vn,organisation,Công ty A,0100109106,in_vietnam,active,sweep,",
        "blog,Nhật ký,nhatky.vn,organisation,Công ty B,0100109106,in_vietnam,active,sweep,",
        "general-website,Tin nhanh,tinnhanh.vn,organisation,Công ty C,0100109107,in_vietnam,active,sweep,",
        "social-network,Mạng xã hội Việt,mxhviet.vn,organisation,Công ty D,0100109106,abroad,active,referral,",
        "general-website,Tin sai,tin..sai.vn,organisation,Công ty E,0100109106,in_vietnam,active,sweep,",
        "general-website,\"Tin tức, sự kiện\",tintucsukien.vn,organisation,Công ty F,0100109106,in_vietnam,active,sweep,\"hai\ndòng\"",
        "social-network,Diễn đàn Sông Hồng,songhong.vn,person,Trần Văn Nam,0100109106,in_vietnam,active,application,",
    ];
    let file = dir.join("danh-sach.csv");
    std::fs::write(&file, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
    let file = file.to_str().unwrap();
    let before = node.last_sequence("01").await;
    let (code, out, _) = site(&node, &dir, &["import", file, "--dry-run"]).await;
    assert_eq!(code, 1, "{out}");
    let listed: Vec<&str> = out.lines().filter(|l| l.starts_with("dòng ")).collect();
    assert_eq!(listed.len(), 3, "{out}");
    for (line, field) in [(3, "kind"), (4, "owner_tax_code"), (6, "domains")] {
        assert!(listed.iter().any(|l| l.starts_with(&format!("dòng {line}: {field}: "))), "line {line}: {out}");
    }
    assert!(out.contains("4 dòng hợp lệ, 3 dòng lỗi; chưa ghi gì"), "{out}");
    assert_eq!(node.last_sequence("01").await, before, "a dry run writes nothing");

    let (code, out, _) = site(&node, &dir, &["import", file, "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let got: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(got["bad_rows"], 3);
    assert_eq!(got["sites"].as_array().unwrap().len(), 4, "the good rows landed: {out}");
    let (_, table, _) = site(&node, &dir, &["list"]).await;
    assert!(table.contains("Tin tức, sự kiện") && table.contains("Tổng cộng: 4 trang"), "{table}");
}

/// A day `days` from now in Vietnam, as the commands take it (dd/mm/yyyy).
fn day(days: i64) -> String {
    let t = einfo_testkit::in_secs(days * 86_400);
    let t = chrono::DateTime::from_timestamp(t.seconds, 0).unwrap().with_timezone(&einfo_common::fields::vietnam());
    t.format("%d/%m/%Y").to_string()
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("JSON ({e}): {out}"))
}

/// The licensing work from a terminal: an application received, a supplement asked for and
/// received, the licence issued on approval, listed, suspended and revoked; approving twice is
/// refused (exit 1).
async fn an_operator_licenses_a_site_from_a_terminal(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let dir = data_dir(&node);
    let args = ["register", "--name", "Mạng Sông Hồng", "--kind", "social-network", "--domain", "songhong.vn"];
    let owner = ["--owner", "Công ty Sông Hồng", "--tax-code", "0100109106", "--found-by", "application", "--json"];
    let (code, out, err) = site(&node, &dir, &[&args[..], &owner[..]].concat()).await;
    assert_eq!(code, 0, "{err}");
    let site_id = json(&out)["name"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let app = |args: Vec<String>| {
        let (node, dir) = (&node, dir.clone());
        async move { ok(node, &dir, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let submitted =
        json(&app(s(&["application", "submit", "--site", &site_id, "--received", &day(-1), "--json"])).await);
    assert_eq!(submitted["state"], "received");
    let application = submitted["name"].as_str().unwrap().to_owned();
    let asked = app(s(&["application", "supplement", &application, "--missing", "Thiếu đề án", "--json"])).await;
    assert_eq!(json(&asked)["state"], "needs-supplement");
    let got = app(s(&["application", "supplement", &application, "--received", &day(0), "--json"])).await;
    assert_eq!(json(&got)["state"], "received");
    let approve = s(&[
        "application",
        "approve",
        &application,
        "--number",
        "12/GP-STTTT",
        "--authority",
        "Sở Thông tin và Truyền thông Hà Nội",
        "--issued",
        &day(0),
        "--expires",
        &day(365),
    ]);
    let issued = app([approve.clone(), s(&["--json"])].concat()).await;
    let licence = json(&issued)["licence"]["name"].as_str().unwrap().to_owned();
    assert_eq!(json(&issued)["licence"]["state"], "valid");
    let listed = app(s(&["licence", "list"])).await;
    assert!(listed.contains("12/GP-STTTT") && listed.contains("Còn hiệu lực"), "{listed}");
    let (_, shown, _) = site(&node, &dir, &["show", &site_id]).await;
    assert!(shown.contains("Đã được cấp phép"), "{shown}");
    let suspended = app(s(&["licence", "suspend", &licence, "--until", &day(30), "--reason", "QĐ 45/QĐ-XPVPHC"])).await;
    assert!(suspended.contains(&format!("Bị đình chỉ đến {}", day(30))), "{suspended}");
    let revoked = app(s(&["licence", "revoke", &licence, "--reason", "QĐ 46/QĐ-XPVPHC"])).await;
    assert!(revoked.contains("Bị thu hồi"), "{revoked}");
    let all = json(&app(s(&["application", "list", "--json"])).await);
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0]["state"], "approved");

    // The same approval again is the same request, done once; another approval of it is refused
    // by the server: exit 1, its reason.
    let again = app([approve.clone(), s(&["--json"])].concat()).await;
    assert_eq!(json(&again)["licence"]["name"], licence.as_str(), "done once");
    let mut other = approve.clone();
    other[4] = "13/GP-STTTT".into();
    let args: Vec<&str> = other.iter().map(String::as_str).collect();
    let (code, _, err) = run(&node, &dir, &args).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused (FailedPrecondition"), "{err}");
}

/// The reporting officer's round from a terminal: the campaign listed as not yet compiled; the
/// report compiled from the register, a narrative section written and a figure reported otherwise
/// with its justification, submitted; the centre's receipt makes it on time.
async fn an_officer_compiles_edits_and_submits_a_report_from_a_terminal(backend: Backend) {
    use einfo_common::clock::Clock as _;
    use einfo_proto::central::v1 as central;
    let clock = einfo_common::clock::ManualClock::at(einfo_common::clock::system().now());
    let Some((centre, node)) = crate::reporting::start(backend, &["01"], None, clock.clone()).await else { return };
    let dir = data_dir(&node);
    ok(
        &node,
        &dir,
        &[
            "site",
            "register",
            "--name",
            "Tin A",
            "--domain",
            "tin-a.vn",
            "--owner",
            "Công ty A",
            "--tax-code",
            "0100109106",
        ],
    )
    .await;
    let now = clock.now();
    let at = |secs: i64| prost_types::Timestamp { seconds: now.timestamp() + secs, nanos: 0 };
    let campaign = centre
        .admin()
        .create_campaign(central::CreateCampaignRequest {
            campaign: Some(central::Campaign {
                reference: "3224/BTTTT-PTTH&TTĐT".into(),
                title: "Kết quả rà soát trang thông tin điện tử tổng hợp".into(),
                period_start: Some(at(-30 * 86_400)),
                period_end: Some(at(86_400)),
                as_of: Some(at(86_400)),
                deadline: Some(at(2 * 86_400)),
                lock_time: Some(at(10 * 86_400)),
                targets: vec!["provinces/2008-01".into()],
                indicators: vec![central::Indicator { code: "sites_by_kind_status".into(), ..Default::default() }],
                narrative_sections: vec!["assessment".into()],
                ..Default::default()
            }),
            request_id: "campaign".into(),
        })
        .await
        .expect("campaign")
        .into_inner();
    let id = campaign.name.trim_start_matches("campaigns/").to_owned();
    let status = einfo_testkit::eventually("the campaign reaches the node", || async {
        let out = ok(&node, &dir, &["report", "status"]).await;
        out.contains("3224/BTTTT-PTTH&TTĐT").then_some(out)
    })
    .await;
    assert!(status.contains("Chưa lập"), "{status}");
    let compiled = json(&ok(&node, &dir, &["report", "compile", "--campaign", &id, "--json"]).await);
    assert_eq!(compiled["report"]["state"], "draft");
    let value = |r: &serde_json::Value| {
        r["values"].as_array().unwrap().iter().find(|v| v["dimension"] == "general-website/UNLICENSED").cloned()
    };
    assert_eq!(value(&compiled["report"]).unwrap()["reported"], 1, "{compiled}");
    ok(&node, &dir, &["report", "edit", "--campaign", &id, "--section", "assessment", "--text", "Đã rà soát."]).await;
    let args = ["report", "edit", "--campaign", &id, "--indicator", "sites_by_kind_status", "--dimension"];
    let edited = ok(
        &node,
        &dir,
        &[&args[..], &["general-website/UNLICENSED", "--value", "2", "--justification", "Bổ sung"], &["--json"][..]]
            .concat(),
    )
    .await;
    let edited = json(&edited);
    assert_eq!(value(&edited).unwrap()["reported"], 2);
    assert_eq!(edited["narrative"][0]["text"], "Đã rà soát.");
    let shown = ok(&node, &dir, &["report", "show", "--campaign", &id]).await;
    assert!(shown.contains("sửa từ 1: Bổ sung") && shown.contains("Dự thảo"), "{shown}");
    let submitted = json(&ok(&node, &dir, &["report", "submit", "--campaign", &id, "--json"]).await);
    assert_eq!(submitted["state"], "submitted");
    let status = einfo_testkit::eventually("the receipt comes back", || async {
        let s = json(&ok(&node, &dir, &["report", "status", "--json"]).await);
        (s[0]["report"]["timeliness"] == "on-time").then_some(s)
    })
    .await;
    assert_eq!(status[0]["report"]["submitted_versions"], 1);
}

/// The inspector's work from a terminal: a joint round, an inspection with a violation and its
/// evidence, a decision within the provision's range; one outside it is refused on its field.
async fn an_inspector_plans_records_and_decides_from_a_terminal(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let dir = data_dir(&node);
    let site = json(
        &ok(
            &node,
            &dir,
            &[
                "site",
                "register",
                "--name",
                "Tin B",
                "--domain",
                "tin-b.vn",
                "--owner",
                "Công ty B",
                "--tax-code",
                "0100109106",
                "--json",
            ],
        )
        .await,
    );
    let site = site["name"].as_str().unwrap().to_owned();
    let (d10, d5, d2, d1) = (day(-10), day(-5), day(-2), day(-1));
    let plan = json(
        &ok(
            &node,
            &dir,
            &[
                "inspection",
                "plan",
                "--decision-number",
                "45/QĐ-STTTT",
                "--decided",
                &d10,
                "--from",
                &day(-30),
                "--to",
                &d1,
                "--lead-unit",
                "Thanh tra Sở",
                "--agency",
                "police",
                "--site",
                &site,
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(plan["round_kind"], "check");
    let plan_name = plan["name"].as_str().unwrap().to_owned();
    let round = json(
        &ok(
            &node,
            &dir,
            &["inspection", "round", &plan_name, "--state", "in-progress", "--took-part", "police", "--json"],
        )
        .await,
    );
    assert_eq!(
        (round["state"].as_str(), round["participating_agencies"].clone()),
        (Some("in-progress"), serde_json::json!(["police"]))
    );
    let evidence = format!("https://tin-b.vn/={}", "ab".repeat(32));
    let ins = json(
        &ok(
            &node,
            &dir,
            &[
                "inspection",
                "record",
                "--site",
                &site,
                "--on",
                &d2,
                "--plan",
                plan["name"].as_str().unwrap(),
                "--type",
                "scheduled",
                "--inspector",
                "Nguyễn Văn An",
                "--findings",
                "Trang chủ có đường dẫn vi phạm",
                "--evidence",
                &evidence,
                "--violation",
                &format!("ND15-99@{d5}"),
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(ins["result"], "violations-found");
    let ins_name = ins["name"].as_str().unwrap().to_owned();
    let decide = |fine: &'static str, number: &'static str| {
        let (node, dir) = (&node, dir.clone());
        let (ins_name, d1) = (ins_name.clone(), d1.clone());
        async move {
            let deadline = day(30);
            let args = ["inspection", "decide", "--inspection", &ins_name, "--number", number, "--on", &d1];
            let more = ["--offender", "Công ty B", "--fine", fine, "--deadline", &deadline, "--json"];
            run(node, &dir, &[&args[..], &more[..]].concat()).await
        }
    };
    let (code, _, err) = decide("50000000", "46/QĐ-XPVPHC").await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("decision.fine_vnd: "), "{err}");
    let (code, issued, err) = decide("7000000", "45/QĐ-XPVPHC").await;
    assert_eq!(code, 0, "{err}");
    let issued = json(&issued);
    assert_eq!(issued["legal_bases"][0], "Điều 99 khoản 1 Nghị định 15/2020/NĐ-CP", "{issued}");
    let listed = ok(&node, &dir, &["inspection", "list", "decisions"]).await;
    assert!(
        listed.contains("45/QĐ-XPVPHC") && listed.contains("7000000") && listed.contains("Tổng cộng: 1"),
        "{listed}"
    );
    let rounds = json(&ok(&node, &dir, &["inspection", "list", "plans", "--json"]).await);
    assert_eq!(rounds.as_array().unwrap().len(), 1);
}

both_backends!(
    an_inspector_plans_records_and_decides_from_a_terminal,
    an_officer_compiles_edits_and_submits_a_report_from_a_terminal,
    an_operator_licenses_a_site_from_a_terminal,
    an_operator_keeps_the_register_from_a_terminal,
    an_import_lists_every_bad_row_and_lands_the_good_ones,
);
