//! Signed, provable logs at the node: the Merkle tree beside each chain, checkpoints (signed
//! with the node's certificate key, or unsigned in a federation on a shared secret), inclusion
//! and consistency proofs, and the centre's cosignatures the node keeps.

use einfo_common::changelog::checkpoint::{self, NoteKey};
use einfo_common::changelog::merkle::{self, Frontier, Hash};
use einfo_common::changelog::{ChangeEntry, LogId};
use einfo_domain::Jurisdiction;
use einfo_proto::log::v1 as logpb;
use einfo_testkit::fixtures::next_entry;
use einfo_testkit::pki::TestPki;
use einfo_testkit::{Backend, ChangeLogClient, TestDb, TestNode, both_backends, fixtures, province, site};
use tonic::Code;

use crate::refusals::reason;

fn log01() -> LogId {
    LogId { jurisdiction: province("01"), service: "registry" }
}

fn request(size: u64) -> logpb::GetCheckpointRequest {
    logpb::GetCheckpointRequest {
        jurisdiction: province("01").to_string(),
        service: "registry".into(),
        size,
        ..Default::default()
    }
}

fn hashes(list: &[Vec<u8>]) -> Vec<Hash> {
    merkle::hashes_of("proof", list).expect("32-byte hashes")
}

async fn register_sites(node: &TestNode, n: usize) {
    let mut r = node.registry("01").await;
    for i in 0..n {
        fixtures::register(&mut r, "provinces/2008-01", site(&format!("Trang {i}"), &[&format!("trang{i}.vn")])).await;
    }
}

/// The whole log as a reader gets it, and the checkpoint the stream ends with.
async fn read_log(c: &mut ChangeLogClient) -> (Vec<ChangeEntry>, Option<logpb::Checkpoint>) {
    let mut stream = c
        .stream_changes(logpb::StreamChangesRequest {
            jurisdiction: province("01").to_string(),
            service: "registry".into(),
            ..Default::default()
        })
        .await
        .expect("a stream")
        .into_inner();
    let (mut entries, mut last) = (Vec::new(), None);
    while let Some(m) = stream.message().await.expect("a message") {
        if let Some(e) = m.entry {
            entries.push(e);
        }
        if m.checkpoint.is_some() {
            last = m.checkpoint;
        }
    }
    (entries, last)
}

/// Roots of every size, from the entries a reader holds.
fn roots(entries: &[ChangeEntry]) -> Vec<Hash> {
    let mut f = Frontier::default();
    let mut out = vec![f.root()];
    for e in entries {
        f.push(&e.hash);
        out.push(f.root());
    }
    out
}

/// A node on a shared secret serves unsigned checkpoints of its tree, which is the tree of the
/// entries it streams; its proofs check; a size it does not have, a cosignature of another
/// tree, or text that is not a note is refused; a cosignature of its own checkpoint is kept once
/// and served back with an inclusion proof.
async fn a_nodes_checkpoints_are_the_tree_of_its_entries_and_its_proofs_check(backend: Backend) {
    let Some(mut node) = TestNode::start(backend, &["01"]).await else { return };
    register_sites(&node, 6).await;
    let mut c = node.changelog().await;
    let (entries, last) = read_log(&mut c).await;
    assert_eq!(entries.len(), 6);
    let roots = roots(&entries);
    let now = einfo_common::clock::Clock::now(&*einfo_common::clock::system());
    // The stream ends with the checkpoint of what it sent.
    let last = last.expect("a checkpoint after the entries");
    assert!(last.certificate.is_empty(), "a node without a certificate signs nothing");
    let read = checkpoint::check(&last.note, &[], None, now, &log01()).expect("a checkpoint");
    assert_eq!((read.size, read.root), (6, roots[6]));

    for size in 1..=6u64 {
        for from in 1..=size {
            let got = c
                .get_checkpoint(logpb::GetCheckpointRequest {
                    consistency_from: from,
                    inclusion_of: from,
                    ..request(size)
                })
                .await
                .expect("a checkpoint")
                .into_inner();
            let cp = checkpoint::check(&got.checkpoint.expect("checkpoint").note, &[], None, now, &log01())
                .expect("a checkpoint");
            assert_eq!((cp.size, cp.root), (size, roots[size as usize]));
            let consistency = hashes(&got.consistency_proof);
            assert!(merkle::check_consistency(&consistency, size, cp.root, from, roots[from as usize]));
            let entry = got.entry.expect("the entry");
            assert_eq!(entry, entries[from as usize - 1]);
            assert!(merkle::check_inclusion(&hashes(&got.inclusion_proof), size, cp.root, from, &entry.hash));
            // Another entry's hash, or another old root, does not check.
            if from < size {
                assert!(!merkle::check_inclusion(
                    &hashes(&got.inclusion_proof),
                    size,
                    cp.root,
                    from,
                    &entries[from as usize].hash
                ));
                assert!(!merkle::check_consistency(&consistency, size, cp.root, from, roots[from as usize + 1]));
            }
        }
    }
    let head = c.get_checkpoint(request(0)).await.expect("the head's checkpoint").into_inner();
    assert_eq!(head.checkpoint.expect("checkpoint").note, last.note);

    let refused = c.get_checkpoint(request(7)).await.expect_err("beyond the head");
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::InvalidArgument, "FIELD_INVALID"), "{refused:?}");
    let refused = c
        .get_checkpoint(logpb::GetCheckpointRequest { consistency_from: 5, ..request(4) })
        .await
        .expect_err("a larger old size");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let none = c
        .get_checkpoint(logpb::GetCheckpointRequest { cosigned: true, inclusion_of: 2, ..request(0) })
        .await
        .expect_err("nothing cosigned yet");
    assert_eq!(none.code(), Code::NotFound, "{none:?}");

    // The centre's cosignature (here by a key of a CA this node does not know: it trusts none).
    let pki = TestPki::new(node.db.dir.join("pki"), &[("gateway", vec![Jurisdiction::Central])]);
    let centre: NoteKey = pki.note_key("gateway");
    let add = |note: String| logpb::AddCosignatureRequest {
        jurisdiction: province("01").to_string(),
        service: "registry".into(),
        note,
        certificate: centre.certificate().to_vec(),
    };
    let at_four = checkpoint::body(&log01(), 4, roots[4]);
    let other_root = checkpoint::body(&log01(), 4, roots[3]);
    let beyond = checkpoint::body(&log01(), 9, roots[4]);
    for (note, why) in [
        (centre.cosign(&centre.sign(&other_root).unwrap(), now).unwrap(), "another tree"),
        (centre.cosign(&centre.sign(&beyond).unwrap(), now).unwrap(), "beyond the head"),
        (at_four.clone(), "no signature at all"),
    ] {
        let e = c.add_cosignature(add(note)).await.expect_err(why);
        assert_eq!((e.code(), reason(&e).as_str()), (Code::InvalidArgument, "FIELD_INVALID"), "{why}: {e:?}");
    }
    let cosigned = centre.cosign(&centre.sign(&at_four).unwrap(), now).unwrap();
    assert!(c.add_cosignature(add(cosigned.clone())).await.expect("kept").into_inner().kept);
    assert!(!c.add_cosignature(add(cosigned.clone())).await.expect("known").into_inner().kept);
    let proof = c
        .get_checkpoint(logpb::GetCheckpointRequest { cosigned: true, inclusion_of: 2, ..request(0) })
        .await
        .expect("the cosigned checkpoint")
        .into_inner();
    assert_eq!(proof.checkpoint.expect("checkpoint").note, cosigned);
    assert_eq!(proof.cosigner_certificate, centre.certificate());
    assert!(merkle::check_inclusion(&hashes(&proof.inclusion_proof), 4, roots[4], 2, &entries[1].hash));
    let none = c
        .get_checkpoint(logpb::GetCheckpointRequest { cosigned: true, inclusion_of: 5, ..request(0) })
        .await
        .expect_err("entry 5 is in no cosigned checkpoint yet");
    assert_eq!(none.code(), Code::NotFound, "{none:?}");
    node.stop().await;
}

/// A node holding a certificate signs its checkpoints with its key; a reader that trusts the CA
/// checks them. It keeps only the centre's cosignatures: one by a province's key is refused.
async fn a_node_with_a_certificate_signs_its_checkpoints_and_keeps_only_the_centres_cosignature() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let pki =
        TestPki::new(db.dir.join("pki"), &[("node-1", vec![province("01")]), ("gateway", vec![Jurisdiction::Central])]);
    let mut s = einfo_testkit::settings(&db, &["01"]);
    // The test's tokens still use the shared secret; the node signs with its certificate.
    pki.signs_with(&mut s, "node-1");
    let mut node = TestNode::start_on(db, s, Default::default()).await;
    register_sites(&node, 3).await;
    let mut c = node.changelog().await;
    let got = c.get_checkpoint(request(0)).await.expect("a checkpoint").into_inner().checkpoint.expect("checkpoint");
    let ca = pki.ca_der();
    let cp = checkpoint::check(&got.note, &got.certificate, Some(&ca), pki.now, &log01()).expect("signed by node-1");
    assert_eq!(cp.size, 3);
    assert_eq!(cp.signer.expect("a signer").name, "node-1");

    let add = |note: String, key: &NoteKey| logpb::AddCosignatureRequest {
        jurisdiction: province("01").to_string(),
        service: "registry".into(),
        note,
        certificate: key.certificate().to_vec(),
    };
    let province_key = pki.note_key("node-1");
    let e = c
        .add_cosignature(add(province_key.cosign(&got.note, pki.now).unwrap(), &province_key))
        .await
        .expect_err("a province is not the centre");
    assert!(e.message().contains("does not act for the centre"), "{e:?}");
    let centre = pki.note_key("gateway");
    let cosigned = centre.cosign(&got.note, pki.now).unwrap();
    // Only the centre's service hands a cosignature in, whatever the note holds.
    let province_service = einfo_common::auth::Caller {
        subject: "node-1".into(),
        role: einfo_common::auth::Role::Service,
        jurisdiction: province("01"),
    };
    let e = logpb::change_log_service_client::ChangeLogServiceClient::with_interceptor(
        node.channel().await,
        einfo_common::auth::BearerToken::new(&node.token(&province_service)).expect("bearer"),
    )
    .add_cosignature(add(cosigned.clone(), &centre))
    .await
    .expect_err("a province's service does not cosign");
    assert_eq!((e.code(), reason(&e).as_str()), (Code::PermissionDenied, "NOT_YOUR_JURISDICTION"), "{e:?}");
    assert!(c.add_cosignature(add(cosigned.clone(), &centre)).await.expect("kept").into_inner().kept);
    let (who, _) = checkpoint::check_cosignature(&cosigned, centre.certificate(), &ca, pki.now).expect("cosigned");
    assert_eq!(who.name, "gateway");

    // A follower gets signed checkpoints in its stream.
    let mut stream = c
        .stream_changes(logpb::StreamChangesRequest {
            jurisdiction: province("01").to_string(),
            service: "registry".into(),
            follow: true,
            ..Default::default()
        })
        .await
        .expect("a stream")
        .into_inner();
    for _ in 0..3 {
        next_entry(&mut stream).await.expect("an entry").expect("not the end");
    }
    let m = stream.message().await.expect("a message").expect("not the end");
    let cp = m.checkpoint.expect("a checkpoint once caught up");
    assert_eq!(checkpoint::check(&cp.note, &cp.certificate, Some(&ca), pki.now, &log01()).expect("signed").size, 3);
    node.stop().await;
}

both_backends!(
    a_nodes_checkpoints_are_the_tree_of_its_entries_and_its_proofs_check;
    plain: a_node_with_a_certificate_signs_its_checkpoints_and_keeps_only_the_centres_cosignature
);
