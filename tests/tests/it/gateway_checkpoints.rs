//! Signed, provable logs between a node and the gateway: the gateway accepts only checkpoints
//! that are the tree of what it holds, keeps them cosigned and gives the cosignature back; a node
//! whose database is rewritten consistently is caught from the checkpoints the gateway holds,
//! with both signed checkpoints kept as evidence; and a restarted gateway audits each log by a
//! consistency proof of a few hundred bytes instead of reading it again.

use einfo_common::changelog::LogId;
use einfo_common::changelog::checkpoint;
use einfo_domain::Jurisdiction;
use einfo_proto::gateway::v1 as gw;
use einfo_proto::log::v1 as logpb;
use einfo_testkit::fixtures::{register_in, rewrite_history};
use einfo_testkit::gateway::gateway_settings;
use einfo_testkit::pki::TestPki;
use einfo_testkit::process::einfo;
use einfo_testkit::{Backend, TestDb, TestGateway, TestNode, eventually, province, site};

fn log(code: &str) -> LogId {
    LogId { jurisdiction: province(code), service: "registry" }
}

/// A node and a gateway that both hold certificates of one CA (and take the test's shared-secret
/// tokens beside them), the gateway following the node's 01.
async fn certified(sites: usize) -> Option<(TestPki, TestNode, TestGateway)> {
    let node_db = TestDb::new(Backend::Sqlite).await?;
    let gateway_db = TestDb::new(Backend::Sqlite).await?;
    let pki = TestPki::new(
        node_db.dir.join("pki"),
        &[("node-1", vec![province("01")]), ("gateway", vec![Jurisdiction::Central])],
    );
    let mut s = einfo_testkit::settings(&node_db, &["01"]);
    pki.signs_with(&mut s, "node-1");
    let node = TestNode::start_on(node_db, s, Default::default()).await;
    for i in 0..sites {
        register_in(&node, "01", site(&format!("Trang {i}"), &[&format!("chung-thuc{i}.vn")])).await;
    }
    let mut gs = gateway_settings(&gateway_db);
    pki.signs_with(&mut gs, "gateway");
    let g = TestGateway::start_with(gateway_db, gs, &[(province("01"), format!("http://{}", node.addr))]).await;
    g.wait_caught_up_on(&node, &["01"]).await;
    Some((pki, node, g))
}

/// The gateway keeps the node's signed checkpoint of what it replicated, with its cosignature,
/// and the node receives the cosignature: a cosigned checkpoint and an inclusion proof of any
/// entry, which check against the CA alone.
async fn the_gateway_keeps_the_nodes_signed_checkpoints_cosigned_and_the_node_receives_the_cosignature() {
    let Some((pki, node, g)) = certified(3).await else { return };
    let ca = pki.ca_der();
    let held = eventually("the gateway holds the checkpoint of 3 entries", || async {
        einfo_gateway::store::latest(g.gateway().db().conn(), "provinces/2008-01", "registry")
            .await
            .expect("the store")
            .filter(|a| a.size == 3)
    })
    .await;
    let cp =
        checkpoint::check(&held.note, &held.certificate, Some(&ca), pki.now, &log("01")).expect("signed by the node");
    assert_eq!(cp.signer.expect("a signer").name, "node-1");
    let (centre, _) = checkpoint::check_cosignature(&held.note, pki.note_key("gateway").certificate(), &ca, pki.now)
        .expect("cosigned");
    assert_eq!(centre.name, "gateway");

    let mut c = node.changelog().await;
    let got = eventually("the node holds the centre's cosignature", || {
        let mut c = c.clone();
        async move {
            c.get_checkpoint(logpb::GetCheckpointRequest {
                jurisdiction: province("01").to_string(),
                service: "registry".into(),
                cosigned: true,
                inclusion_of: 2,
                ..Default::default()
            })
            .await
            .ok()
            .map(tonic::Response::into_inner)
        }
    })
    .await;
    let note = got.checkpoint.expect("a checkpoint").note;
    checkpoint::check_cosignature(&note, &got.cosigner_certificate, &ca, pki.now).expect("the centre's cosignature");
    let entry = got.entry.expect("entry 2");
    let proof = einfo_common::changelog::merkle::hashes_of("proof", &got.inclusion_proof).expect("hashes");
    let kept = checkpoint::check(&note, &held.certificate, Some(&ca), pki.now, &log("01")).expect("signed");
    assert!(einfo_common::changelog::merkle::check_inclusion(&proof, kept.size, kept.root, 2, &entry.hash));
    let _ = &mut c;

    // The same, as a province's operator gives it: `einfo proof` asks the node (signing with the
    // certificate acting for 01 in the data directory's pki), `einfo verify-proof` checks it
    // offline against the CA; a forged one is refused.
    let out = einfo()
        .args(["proof", "--node", &format!("http://{}", node.addr), "--jurisdiction", "provinces/2008-01"])
        .args(["--service", "registry", "--sequence", "2", "--data-dir"])
        .arg(&node.db.dir)
        .output()
        .await
        .expect("run einfo proof");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = node.db.dir.join("proof.json");
    std::fs::write(&file, &out.stdout).expect("the proof written");
    let ca_file = pki.dir.join("ca.pem");
    let out = einfo().arg("verify-proof").arg(&file).arg("--ca").arg(&ca_file).output().await.expect("verify-proof");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.starts_with("verified: entry 2 of provinces/2008-01/registry"), "{said}");
    assert!(said.contains("signed by node-1, cosigned by the centre (gateway)"), "{said}");
    let mut forged: einfo_common::changelog::proof::Bundle = serde_json::from_slice(&out_of(&file)).expect("a bundle");
    forged.inclusion_proof.reverse();
    forged.inclusion_proof.push(forged.inclusion_proof[0].clone());
    std::fs::write(&file, serde_json::to_vec(&forged).unwrap()).expect("the forgery written");
    let out = einfo().arg("verify-proof").arg(&file).arg("--ca").arg(&ca_file).output().await.expect("verify-proof");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not verified: the inclusion proof"), "{out:?}");
}

fn out_of(file: &std::path::Path) -> Vec<u8> {
    std::fs::read(file).expect("the file")
}

/// The node's registry log rewritten behind the gateway's back, chain and tree recomputed, while
/// the gateway is down: at its restart the node cannot prove its head extends what the centre
/// holds. The province is in alarm, and both checkpoints the node signed — the one the centre
/// accepted and the one of the rewritten history, of the same size and another root — are kept.
async fn a_history_rewritten_consistently_is_caught_by_the_checkpoints_the_gateway_holds() {
    let Some((pki, node, mut g)) = certified(3).await else { return };
    eventually("the gateway holds a checkpoint of 3 entries", || async {
        einfo_gateway::store::latest(g.gateway().db().conn(), "provinces/2008-01", "registry")
            .await
            .expect("the store")
            .filter(|a| a.size == 3)
    })
    .await;
    g.stop().await;
    rewrite_history(&node, "01", 2, "sửa lén, tính lại cả chuỗi").await;
    g.start_again_same_port().await;
    let f = eventually("01 in alarm", || async {
        g.status()
            .await
            .into_iter()
            .find(|f| f.jurisdiction == "provinces/2008-01" && f.state() == gw::FreshnessState::Alarm)
    })
    .await;
    assert!(f.detail.contains("history was rewritten"), "{}", f.detail);
    let evidence =
        einfo_gateway::store::evidence(g.gateway().db().conn(), "provinces/2008-01").await.expect("the evidence");
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let e = &evidence[0];
    let ca = pki.ca_der();
    let held = checkpoint::check(&e.held.note, &e.held.certificate, Some(&ca), pki.now, &log("01")).expect("signed");
    let new = checkpoint::check(&e.new.note, &e.new.certificate, Some(&ca), pki.now, &log("01")).expect("signed");
    // Two checkpoints of one size with two roots, both signed by the node: a fork it cannot deny.
    assert_eq!((held.size, new.size), (3, 3));
    assert_ne!(held.root, new.root);
    assert_eq!((held.signer.unwrap().name, new.signer.unwrap().name), ("node-1".to_string(), "node-1".to_string()));
}

/// Entries in each of the logs audited at a restart.
const ENTRIES: u32 = 10_000;

/// A gateway restarted over logs of 10,000 entries audits each by a consistency proof: what it
/// reads per log stays under 64 KiB (the full read it replaces is megabytes).
async fn a_restarted_gateway_audits_each_log_by_a_consistency_proof_of_a_few_hundred_bytes() {
    let Some(node) = TestNode::start(Backend::Sqlite, &["01", "79"]).await else { return };
    let codes = ["01".to_string(), "79".to_string()];
    crate::gateway_restart::import_everywhere(&node, &codes, "proof", ENTRIES).await;
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let url = format!("http://{}", node.addr);
    let mut s = gateway_settings(&db);
    s.gateway.audit_interval_ms = 0;
    let mut g = TestGateway::start_with(db, s, &[(province("01"), url.clone()), (province("79"), url)]).await;
    g.wait_caught_up(&[&node]).await;
    g.stop().await;
    // Written while the gateway is down: the proof is from 10,000 entries to 10,005.
    for code in ["01", "79"] {
        for i in 0..5 {
            register_in(&node, code, site(&format!("Trang muộn {i}"), &[&format!("muon{i}-{code}.vn")])).await;
        }
    }
    g.start_again_same_port().await;
    g.wait_caught_up(&[&node]).await;
    for code in ["01", "79"] {
        let read = eventually(&format!("the audit of {code}"), || async {
            g.gateway().audit_read(&province(code), "registry")
        })
        .await;
        assert!(read.by_proof, "{code}: audited by reading: {read:?}");
        assert!(read.bytes < 64 * 1024, "{code}: the audit read {} bytes", read.bytes);
        // A checkpoint and a proof of about log2(10,005) hashes, not nothing.
        assert!(read.bytes > 8 * 32, "{code}: the audit read only {} bytes", read.bytes);
        eprintln!("{code}: restart audit by consistency proof read {} bytes of a log of {ENTRIES} entries", read.bytes);
    }
}

einfo_testkit::plain_tests!(
    the_gateway_keeps_the_nodes_signed_checkpoints_cosigned_and_the_node_receives_the_cosignature,
    a_history_rewritten_consistently_is_caught_by_the_checkpoints_the_gateway_holds,
    a_restarted_gateway_audits_each_log_by_a_consistency_proof_of_a_few_hundred_bytes,
);
