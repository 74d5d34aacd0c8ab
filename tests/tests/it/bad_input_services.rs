//! Bad text and bad domain lists, to every provincial service: one row per rule broken. Every
//! free-text field of every request of registry, inspection and reporting refuses NUL, the rest
//! of C0, DEL, C1 and the bidirectional override and isolate controls, tab and line feed in a
//! single-line field, and more characters than its limit (`docs/contracts.md`, "Text fields and
//! domains"); a site refuses more than 100 domains and a domain listed twice. Each row is a
//! literal request with the code, `ErrorInfo` reason and `BadRequest` field it must get, and
//! checks that no log of the node (registry, inspection and reporting, of 01 and of 79) moved.
//! The text that is accepted is stored NFC (the expected values below are precomposed literals),
//! trimmed, with the line breaks of multi-line fields.

use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;
use einfo_proto::reporting::v1 as rep;
use einfo_testkit::fixtures::apply;
use einfo_testkit::{
    Backend, InspectionClient, RegistryClient, ReportingClient, SiteExt, TestNode, both_backends, in_secs, site,
};
use tonic::Code;

use crate::inspection::{days, decision, inspection, issue, record, violation};
use crate::refusals::{self, problems};

const HN: &str = "provinces/2008-01";
/// A well-formed licence of 01 that does not exist: the rows on it are refused before the
/// licence is looked up.
const NO_LICENCE: &str = "provinces/2008-01/licences/00000000000000000000000000000bad";
/// A well-formed report of 01 that does not exist (likewise).
const NO_REPORT: &str = "provinces/2008-01/reports/00000000000000000000000000000bad";
/// A well-formed decision of 01 that does not exist (likewise).
const NO_DECISION: &str = "provinces/2008-01/decisions/00000000000000000000000000000bad";

/// The call a row makes: registry and inspection as the operator of 01, reporting as its
/// reporting officer.
enum Call {
    Register(reg::RegisterSiteRequest),
    Update(reg::UpdateSiteRequest),
    Correct(reg::CorrectSiteRequest),
    Void(reg::VoidSiteRequest),
    AddRecord(reg::AddSiteRecordRequest),
    ListSites(reg::ListSitesRequest),
    Submit(reg::SubmitApplicationRequest),
    RequestSupplement(reg::RequestSupplementRequest),
    Reject(reg::RejectApplicationRequest),
    Approve(reg::ApproveApplicationRequest),
    Amend(reg::AmendLicenceRequest),
    Suspend(reg::SuspendLicenceRequest),
    Revoke(reg::RevokeLicenceRequest),
    CreatePlan(insp::CreatePlanRequest),
    RecordInspection(insp::RecordInspectionRequest),
    IssueDecision(insp::IssueDecisionRequest),
    DecisionEvent(insp::RecordDecisionEventRequest),
    CorrectDecision(insp::CorrectDecisionRequest),
    VoidDecision(insp::VoidDecisionRequest),
    Override(rep::OverrideValueRequest),
    Narrative(rep::SetNarrativeRequest),
}

struct Clients {
    registry: RegistryClient,
    inspection: InspectionClient,
    reporting: ReportingClient,
}

impl Call {
    async fn run(self, c: &mut Clients) -> Result<(), tonic::Status> {
        let (r, i, p) = (&mut c.registry, &mut c.inspection, &mut c.reporting);
        match self {
            Call::Register(x) => r.register_site(x).await.map(drop),
            Call::Update(x) => r.update_site(x).await.map(drop),
            Call::Correct(x) => r.correct_site(x).await.map(drop),
            Call::Void(x) => r.void_site(x).await.map(drop),
            Call::AddRecord(x) => r.add_site_record(x).await.map(drop),
            Call::ListSites(x) => r.list_sites(x).await.map(drop),
            Call::Submit(x) => r.submit_application(x).await.map(drop),
            Call::RequestSupplement(x) => r.request_supplement(x).await.map(drop),
            Call::Reject(x) => r.reject_application(x).await.map(drop),
            Call::Approve(x) => r.approve_application(x).await.map(drop),
            Call::Amend(x) => r.amend_licence(x).await.map(drop),
            Call::Suspend(x) => r.suspend_licence(x).await.map(drop),
            Call::Revoke(x) => r.revoke_licence(x).await.map(drop),
            Call::CreatePlan(x) => i.create_plan(x).await.map(drop),
            Call::RecordInspection(x) => i.record_inspection(x).await.map(drop),
            Call::IssueDecision(x) => i.issue_decision(x).await.map(drop),
            Call::DecisionEvent(x) => i.record_decision_event(x).await.map(drop),
            Call::CorrectDecision(x) => i.correct_decision(x).await.map(drop),
            Call::VoidDecision(x) => i.void_decision(x).await.map(drop),
            Call::Override(x) => p.override_value(x).await.map(drop),
            Call::Narrative(x) => p.set_narrative(x).await.map(drop),
        }
    }
}

type Row = refusals::Row<Call>;

/// What the seeded node holds for the rows to aim at.
struct Seeded {
    /// A site of 01 ("Trang văn bản", văn-bản.vn), as it stands after its application.
    site: reg::Site,
    /// Its pending licence application.
    application: String,
    /// An inspection of the site with one ND15-99 violation.
    inspection: insp::Inspection,
    /// A decision on that inspection, as issued.
    decision: insp::SanctionDecision,
}

async fn seed(c: &mut Clients) -> Seeded {
    let site = c
        .registry
        .register_site(reg::RegisterSiteRequest {
            parent: HN.into(),
            site: Some(site("Trang văn bản", &["văn-bản.vn"])),
            request_id: "seed-site".into(),
        })
        .await
        .expect("site registered")
        .into_inner();
    let application = apply(&mut c.registry, &site.name, 3600).await.name;
    // The application changed the site's status, and so its etag: the rows send the current one.
    let site = c.registry.get_site(reg::GetSiteRequest { name: site.name }).await.expect("site read").into_inner();
    let inspection =
        record(&mut c.inspection, inspection(&site.name, days(-2), vec![violation("ND15-99", days(-5))]), "seed-ins")
            .await;
    // ND15-99 for a person: 2,500,000–5,000,000 VND.
    let decision =
        issue(&mut c.inspection, decision(&inspection, insp::OffenderKind::Person, 3_000_000), "seed-decision").await;
    Seeded { site, application, inspection, decision }
}

/// Every log head of the node: registry, inspection and reporting, of 01 and of 79.
async fn heads(node: &TestNode) -> [u64; 6] {
    let mut out = [0; 6];
    for (i, (code, service)) in
        ["01", "79"].into_iter().flat_map(|c| ["registry", "inspection", "reporting"].map(|s| (c, s))).enumerate()
    {
        out[i] = node.log_sequence(code, service).await;
    }
    out
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() })
}

/// The requests of the rows, each with one field set to the text under test.
impl Seeded {
    fn register(&self, s: reg::Site, id: &str) -> Call {
        Call::Register(reg::RegisterSiteRequest { parent: HN.into(), site: Some(s), request_id: id.into() })
    }
    fn new_site(&self) -> reg::Site {
        site("Trang mới", &["trang-moi.vn"])
    }
    fn site_named(&self, v: &str, id: &str) -> Call {
        self.register(reg::Site { display_name: v.into(), ..self.new_site() }, id)
    }
    fn notes(&self, v: &str, id: &str) -> Call {
        self.register(reg::Site { notes: v.into(), ..self.new_site() }, id)
    }
    fn domains(&self, v: Vec<String>, id: &str) -> Call {
        self.register(reg::Site { domains: v, ..self.new_site() }, id)
    }
    fn owner(&self, f: impl FnOnce(&mut reg::Owner), id: &str) -> Call {
        let mut s = self.new_site();
        f(s.owner.get_or_insert_with(Default::default));
        self.register(s, id)
    }
    fn owner_name(&self, v: &str, id: &str) -> Call {
        self.register(self.new_site().owned_by(v, einfo_testkit::fixtures::TAX_CODE), id)
    }
    fn address(&self, v: &str, id: &str) -> Call {
        self.owner(|o| o.address = v.into(), id)
    }
    fn legal_representative(&self, v: &str, id: &str) -> Call {
        self.owner(|o| o.legal_representative = v.into(), id)
    }
    fn contact(&self, v: &str, id: &str) -> Call {
        self.owner(|o| o.contact = v.into(), id)
    }
    fn update(&self, s: reg::Site, paths: &[&str], id: &str) -> Call {
        let s = reg::Site { name: self.site.name.clone(), etag: self.site.etag.clone(), ..s };
        Call::Update(reg::UpdateSiteRequest { site: Some(s), update_mask: mask(paths), request_id: id.into() })
    }
    fn update_notes(&self, v: &str, id: &str) -> Call {
        self.update(reg::Site { notes: v.into(), ..Default::default() }, &["notes"], id)
    }
    fn update_address(&self, v: &str, id: &str) -> Call {
        let owner = reg::Owner { address: v.into(), ..Default::default() };
        self.update(reg::Site { owner: Some(owner), ..Default::default() }, &["owner.address"], id)
    }
    fn update_domains(&self, v: Vec<String>, id: &str) -> Call {
        self.update(reg::Site { domains: v, ..Default::default() }, &["domains"], id)
    }
    fn correct_reason(&self, v: &str, id: &str) -> Call {
        let s = reg::Site {
            name: self.site.name.clone(),
            etag: self.site.etag.clone(),
            display_name: "Trang văn bản (sửa)".into(),
            ..Default::default()
        };
        Call::Correct(reg::CorrectSiteRequest {
            site: Some(s),
            update_mask: mask(&["display_name"]),
            reason: v.into(),
            request_id: id.into(),
        })
    }
    fn void_reason(&self, v: &str, id: &str) -> Call {
        Call::Void(reg::VoidSiteRequest {
            name: self.site.name.clone(),
            etag: self.site.etag.clone(),
            reason: v.into(),
            request_id: id.into(),
        })
    }
    fn reference(&self, v: &str, id: &str) -> Call {
        Call::AddRecord(reg::AddSiteRecordRequest {
            site: self.site.name.clone(),
            record: Some(reg::SiteRecord {
                kind: reg::SiteRecordKind::Registration as i32,
                reference: v.into(),
                start_time: Some(in_secs(-86_400)),
                ..Default::default()
            }),
            request_id: id.into(),
        })
    }
    fn name_query(&self, v: &str) -> Call {
        Call::ListSites(reg::ListSitesRequest { parent: HN.into(), name_query: v.into(), ..Default::default() })
    }
    fn dossier_item(&self, v: &str, id: &str) -> Call {
        Call::Submit(reg::SubmitApplicationRequest {
            application: Some(reg::LicenceApplication {
                site: self.site.name.clone(),
                dossier_items: vec!["đơn đề nghị".into(), v.into()],
                receive_time: Some(in_secs(-3600)),
                ..Default::default()
            }),
            request_id: id.into(),
        })
    }
    fn supplement_reason(&self, v: &str, id: &str) -> Call {
        Call::RequestSupplement(reg::RequestSupplementRequest {
            name: self.application.clone(),
            reason: v.into(),
            request_id: id.into(),
        })
    }
    fn reject_reason(&self, v: &str, id: &str) -> Call {
        Call::Reject(reg::RejectApplicationRequest {
            name: self.application.clone(),
            reason: v.into(),
            request_id: id.into(),
        })
    }
    fn approve(&self, l: reg::Licence, id: &str) -> Call {
        let l = reg::Licence { issue_time: Some(in_secs(-60)), expire_time: Some(days(365)), ..l };
        Call::Approve(reg::ApproveApplicationRequest {
            name: self.application.clone(),
            licence: Some(l),
            request_id: id.into(),
        })
    }
    fn licence_number(&self, v: &str, id: &str) -> Call {
        self.approve(reg::Licence { number: v.into(), ..Default::default() }, id)
    }
    fn issuing_authority(&self, v: &str, id: &str) -> Call {
        self.approve(
            reg::Licence { number: "15/GP-STTTT".into(), issuing_authority: v.into(), ..Default::default() },
            id,
        )
    }
    fn amend(&self, l: reg::Licence, paths: &[&str], reason: &str, id: &str) -> Call {
        let l = reg::Licence { name: NO_LICENCE.into(), etag: "1".into(), ..l };
        Call::Amend(reg::AmendLicenceRequest {
            licence: Some(l),
            update_mask: mask(paths),
            reason: reason.into(),
            request_id: id.into(),
        })
    }
    fn amend_reason(&self, v: &str, id: &str) -> Call {
        self.amend(reg::Licence { number: "16/GP-STTTT".into(), ..Default::default() }, &["number"], v, id)
    }
    fn amend_authority(&self, v: &str, id: &str) -> Call {
        let l = reg::Licence { issuing_authority: v.into(), ..Default::default() };
        self.amend(l, &["issuing_authority"], "đổi tên cơ quan", id)
    }
    fn suspend_reason(&self, v: &str, id: &str) -> Call {
        Call::Suspend(reg::SuspendLicenceRequest {
            name: NO_LICENCE.into(),
            until: Some(days(30)),
            reason: v.into(),
            request_id: id.into(),
        })
    }
    fn revoke_reason(&self, v: &str, id: &str) -> Call {
        Call::Revoke(reg::RevokeLicenceRequest { name: NO_LICENCE.into(), reason: v.into(), request_id: id.into() })
    }
    fn plan(&self, p: insp::InspectionPlan, id: &str) -> Call {
        let p = insp::InspectionPlan {
            decision_time: Some(days(-10)),
            period_start: Some(days(-30)),
            period_end: Some(days(-1)),
            target_sites: vec![self.site.name.clone()],
            ..p
        };
        Call::CreatePlan(insp::CreatePlanRequest { parent: HN.into(), plan: Some(p), request_id: id.into() })
    }
    fn plan_number(&self, v: &str, id: &str) -> Call {
        self.plan(
            insp::InspectionPlan {
                decision_number: v.into(), lead_unit: "Thanh tra Sở".into(), ..Default::default()
            },
            id,
        )
    }
    fn lead_unit(&self, v: &str, id: &str) -> Call {
        self.plan(
            insp::InspectionPlan { decision_number: "7/QĐ-STTTT".into(), lead_unit: v.into(), ..Default::default() },
            id,
        )
    }
    fn record(&self, x: insp::Inspection, id: &str) -> Call {
        Call::RecordInspection(insp::RecordInspectionRequest {
            parent: HN.into(),
            inspection: Some(x),
            request_id: id.into(),
        })
    }
    fn new_inspection(&self) -> insp::Inspection {
        inspection(&self.site.name, days(-1), vec![violation("ND15-99", days(-3))])
    }
    fn inspector(&self, v: &str, id: &str) -> Call {
        self.record(
            insp::Inspection { inspectors: vec!["Nguyễn Văn An".into(), v.into()], ..self.new_inspection() },
            id,
        )
    }
    fn findings(&self, v: &str, id: &str) -> Call {
        self.record(insp::Inspection { findings: v.into(), ..self.new_inspection() }, id)
    }
    fn description(&self, v: &str, id: &str) -> Call {
        let mut x = self.new_inspection();
        x.violations[0].description = v.into();
        self.record(x, id)
    }
    fn evidence_url(&self, v: &str, id: &str) -> Call {
        let mut x = self.new_inspection();
        x.evidence[0].url = v.into();
        self.record(x, id)
    }
    fn issue(&self, d: insp::SanctionDecision, id: &str) -> Call {
        Call::IssueDecision(insp::IssueDecisionRequest { parent: HN.into(), decision: Some(d), request_id: id.into() })
    }
    fn new_decision(&self) -> insp::SanctionDecision {
        decision(&self.inspection, insp::OffenderKind::Person, 3_000_000)
    }
    fn decision_number(&self, v: &str, id: &str) -> Call {
        self.issue(insp::SanctionDecision { number: v.into(), ..self.new_decision() }, id)
    }
    fn offender_name(&self, v: &str, id: &str) -> Call {
        self.issue(insp::SanctionDecision { offender_name: v.into(), ..self.new_decision() }, id)
    }
    fn note(&self, v: &str, id: &str) -> Call {
        Call::DecisionEvent(insp::RecordDecisionEventRequest {
            name: NO_DECISION.into(),
            etag: "1".into(),
            event: insp::DecisionEvent::Complied as i32,
            amount_vnd: 0,
            note: v.into(),
            request_id: id.into(),
        })
    }
    fn correct_decision(&self, d: insp::SanctionDecision, paths: &[&str], reason: &str, id: &str) -> Call {
        let d = insp::SanctionDecision { name: self.decision.name.clone(), etag: self.decision.etag.clone(), ..d };
        Call::CorrectDecision(insp::CorrectDecisionRequest {
            decision: Some(d),
            update_mask: mask(paths),
            reason: reason.into(),
            request_id: id.into(),
        })
    }
    fn correct_decision_reason(&self, v: &str, id: &str) -> Call {
        let d = insp::SanctionDecision { number: "46/QĐ-XPVPHC".into(), ..Default::default() };
        self.correct_decision(d, &["number"], v, id)
    }
    fn corrected_number(&self, v: &str, id: &str) -> Call {
        self.correct_decision(
            insp::SanctionDecision { number: v.into(), ..Default::default() },
            &["number"],
            "sai số",
            id,
        )
    }
    fn corrected_offender(&self, v: &str, id: &str) -> Call {
        let d = insp::SanctionDecision { offender_name: v.into(), ..Default::default() };
        self.correct_decision(d, &["offender_name"], "sai tên", id)
    }
    fn void_decision_reason(&self, v: &str, id: &str) -> Call {
        Call::VoidDecision(insp::VoidDecisionRequest {
            name: NO_DECISION.into(),
            etag: "1".into(),
            reason: v.into(),
            request_id: id.into(),
        })
    }
    fn justification(&self, v: &str, id: &str) -> Call {
        Call::Override(rep::OverrideValueRequest {
            name: NO_REPORT.into(),
            etag: "1".into(),
            indicator: "inspections".into(),
            dimension: String::new(),
            value: 5,
            justification: v.into(),
            request_id: id.into(),
        })
    }
    fn narrative(&self, v: &str, id: &str) -> Call {
        Call::Narrative(rep::SetNarrativeRequest {
            name: NO_REPORT.into(),
            etag: "1".into(),
            section: "assessment".into(),
            text: v.into(),
            request_id: id.into(),
        })
    }
}

/// `n` distinct domains `d0.vn`, `d1.vn`, …
fn many_domains(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("d{i}.vn")).collect()
}

fn rows(s: &Seeded) -> Vec<Row> {
    let invalid = |reason, call, field| Row {
        reason,
        call,
        code: Code::InvalidArgument,
        info: "FIELD_INVALID",
        field: Some(field),
    };
    vec![
        invalid("a NUL in the notes of a new site", s.notes("ghi\u{0}chú", "b001"), "site.notes"),
        invalid(
            "an escape sequence (C0) in the notes of a new site",
            s.notes("ghi \u{1b}[31mchú", "b002"),
            "site.notes",
        ),
        invalid("DEL in the notes of a new site", s.notes("ghi\u{7f}chú", "b003"), "site.notes"),
        invalid("a C1 control (NEL) in the notes of a new site", s.notes("ghi\u{85}chú", "b004"), "site.notes"),
        invalid(
            "a right-to-left override in the notes of a new site",
            s.notes("ghi \u{202e}úhc", "b005"),
            "site.notes",
        ),
        invalid("a left-to-right isolate in the notes of a new site", s.notes("ghi \u{2066}chú", "b006"), "site.notes"),
        invalid(
            "a lone carriage return in the notes of a new site",
            s.notes("dòng một\rdòng hai", "b007"),
            "site.notes",
        ),
        invalid("a form feed in the notes of a new site", s.notes("trang một\u{c}trang hai", "b008"), "site.notes"),
        invalid(
            "the notes of a new site: 4,001 characters (at most 4,000)",
            s.notes(&"a".repeat(4001), "b009"),
            "site.notes",
        ),
        invalid("a NUL in the notes of an update", s.update_notes("ghi\u{0}chú", "b010"), "site.notes"),
        invalid(
            "a right-to-left override in the notes of an update",
            s.update_notes("ghi \u{202e}úhc", "b011"),
            "site.notes",
        ),
        invalid(
            "the notes of an update: 4,001 characters (at most 4,000)",
            s.update_notes(&"a".repeat(4001), "b012"),
            "site.notes",
        ),
        invalid("a NUL in a site's name", s.site_named("Nguyễn\u{0}Văn An", "b013"), "site.display_name"),
        invalid("an escape (C0) in a site's name", s.site_named("Nguyễn \u{1b}Văn An", "b014"), "site.display_name"),
        invalid(
            "a C1 control (U+0080) in a site's name",
            s.site_named("Nguyễn\u{80} Văn An", "b015"),
            "site.display_name",
        ),
        invalid(
            "a right-to-left isolate in a site's name",
            s.site_named("Nguyễn \u{2067}Văn An", "b016"),
            "site.display_name",
        ),
        invalid("a NUL in an owner's name", s.owner_name("Nguyễn\u{0}Văn An", "b017"), "site.owner.display_name"),
        invalid("DEL in an owner's name", s.owner_name("Nguyễn\u{7f} Văn An", "b018"), "site.owner.display_name"),
        invalid(
            "a left-to-right embedding in an owner's name",
            s.owner_name("Nguyễn \u{202a}Văn An", "b019"),
            "site.owner.display_name",
        ),
        invalid("a NUL in an owner's address", s.address("số 1\u{0} phố Huế", "b020"), "site.owner.address"),
        invalid("an escape (C0) in an owner's address", s.address("số 1 \u{1b}phố Huế", "b021"), "site.owner.address"),
        invalid("DEL in an owner's address", s.address("số 1\u{7f} phố Huế", "b022"), "site.owner.address"),
        invalid(
            "a C1 control (CSI) in an owner's address",
            s.address("số 1\u{9b} phố Huế", "b023"),
            "site.owner.address",
        ),
        invalid(
            "a right-to-left override in an owner's address",
            s.address("số 1 \u{202e}ếuH ốhp", "b024"),
            "site.owner.address",
        ),
        invalid(
            "a pop-directional-isolate in an owner's address",
            s.address("số 1 phố Huế\u{2069} A", "b025"),
            "site.owner.address",
        ),
        invalid(
            "a tab in a single-line field in an owner's address",
            s.address("số 1\tphố Huế", "b026"),
            "site.owner.address",
        ),
        invalid(
            "a line feed in a single-line field in an owner's address",
            s.address("số 1\nphố Huế", "b027"),
            "site.owner.address",
        ),
        invalid(
            "an owner's address: 501 characters (at most 500)",
            s.address(&"a".repeat(501), "b028"),
            "site.owner.address",
        ),
        invalid(
            "a NUL in the address of an update",
            s.update_address("số 1\u{0} phố Huế", "b029"),
            "site.owner.address",
        ),
        invalid(
            "a tab in a single-line field in the address of an update",
            s.update_address("số 1\tphố Huế", "b030"),
            "site.owner.address",
        ),
        invalid(
            "the address of an update: 501 characters (at most 500)",
            s.update_address(&"a".repeat(501), "b031"),
            "site.owner.address",
        ),
        invalid(
            "a NUL in a legal representative",
            s.legal_representative("số 1\u{0} phố Huế", "b032"),
            "site.owner.legal_representative",
        ),
        invalid(
            "a right-to-left override in a legal representative",
            s.legal_representative("số 1 \u{202e}ếuH ốhp", "b033"),
            "site.owner.legal_representative",
        ),
        invalid(
            "a line feed in a single-line field in a legal representative",
            s.legal_representative("số 1\nphố Huế", "b034"),
            "site.owner.legal_representative",
        ),
        invalid(
            "a legal representative: 301 characters (at most 300)",
            s.legal_representative(&"a".repeat(301), "b035"),
            "site.owner.legal_representative",
        ),
        invalid("an escape (C0) in an owner's contact", s.contact("số 1 \u{1b}phố Huế", "b036"), "site.owner.contact"),
        invalid(
            "a C1 control (CSI) in an owner's contact",
            s.contact("số 1\u{9b} phố Huế", "b037"),
            "site.owner.contact",
        ),
        invalid(
            "a tab in a single-line field in an owner's contact",
            s.contact("số 1\tphố Huế", "b038"),
            "site.owner.contact",
        ),
        invalid(
            "an owner's contact: 301 characters (at most 300)",
            s.contact(&"a".repeat(301), "b039"),
            "site.owner.contact",
        ),
        invalid("a NUL in the reason of a site correction", s.correct_reason("ghi\u{0}chú", "b040"), "reason"),
        invalid(
            "a right-to-left override in the reason of a site correction",
            s.correct_reason("ghi \u{202e}úhc", "b041"),
            "reason",
        ),
        invalid(
            "the reason of a site correction: 2,001 characters (at most 2,000)",
            s.correct_reason(&"a".repeat(2001), "b042"),
            "reason",
        ),
        invalid(
            "an escape sequence (C0) in the reason a site is voided",
            s.void_reason("ghi \u{1b}[31mchú", "b043"),
            "reason",
        ),
        invalid(
            "a left-to-right isolate in the reason a site is voided",
            s.void_reason("ghi \u{2066}chú", "b044"),
            "reason",
        ),
        invalid(
            "the reason a site is voided: 2,001 characters (at most 2,000)",
            s.void_reason(&"a".repeat(2001), "b045"),
            "reason",
        ),
        invalid(
            "a NUL in a registration record's reference",
            s.reference("số 1\u{0} phố Huế", "b046"),
            "record.reference",
        ),
        invalid(
            "a right-to-left override in a registration record's reference",
            s.reference("số 1 \u{202e}ếuH ốhp", "b047"),
            "record.reference",
        ),
        invalid(
            "a tab in a single-line field in a registration record's reference",
            s.reference("số 1\tphố Huế", "b048"),
            "record.reference",
        ),
        invalid(
            "a line feed in a single-line field in a registration record's reference",
            s.reference("số 1\nphố Huế", "b049"),
            "record.reference",
        ),
        invalid(
            "a registration record's reference: 301 characters (at most 300)",
            s.reference(&"a".repeat(301), "b050"),
            "record.reference",
        ),
        invalid("a NUL in a name query", s.name_query("số 1\u{0} phố Huế"), "name_query"),
        invalid("a right-to-left override in a name query", s.name_query("số 1 \u{202e}ếuH ốhp"), "name_query"),
        invalid("a line feed in a single-line field in a name query", s.name_query("số 1\nphố Huế"), "name_query"),
        invalid("a name query: 301 characters (at most 300)", s.name_query(&"a".repeat(301)), "name_query"),
        invalid("a NUL in a dossier item", s.dossier_item("Nguyễn\u{0}Văn An", "b051"), "application.dossier_items[1]"),
        invalid(
            "a left-to-right embedding in a dossier item",
            s.dossier_item("Nguyễn \u{202a}Văn An", "b052"),
            "application.dossier_items[1]",
        ),
        invalid("a NUL in the reason a supplement is requested", s.supplement_reason("ghi\u{0}chú", "b053"), "reason"),
        invalid(
            "a C1 control (NEL) in the reason a supplement is requested",
            s.supplement_reason("ghi\u{85}chú", "b054"),
            "reason",
        ),
        invalid(
            "the reason a supplement is requested: 2,001 characters (at most 2,000)",
            s.supplement_reason(&"a".repeat(2001), "b055"),
            "reason",
        ),
        invalid("a NUL in the reason an application is rejected", s.reject_reason("ghi\u{0}chú", "b056"), "reason"),
        invalid(
            "a lone carriage return in the reason an application is rejected",
            s.reject_reason("dòng một\rdòng hai", "b057"),
            "reason",
        ),
        invalid(
            "the reason an application is rejected: 2,001 characters (at most 2,000)",
            s.reject_reason(&"a".repeat(2001), "b058"),
            "reason",
        ),
        invalid("a NUL in a licence number", s.licence_number("Nguyễn\u{0}Văn An", "b059"), "licence.number"),
        invalid(
            "a right-to-left isolate in a licence number",
            s.licence_number("Nguyễn \u{2067}Văn An", "b060"),
            "licence.number",
        ),
        invalid(
            "a licence number: 101 characters (at most 100)",
            s.licence_number(&"a".repeat(101), "b061"),
            "licence.number",
        ),
        invalid(
            "a NUL in an issuing authority",
            s.issuing_authority("Nguyễn\u{0}Văn An", "b062"),
            "licence.issuing_authority",
        ),
        invalid(
            "a left-to-right embedding in an issuing authority",
            s.issuing_authority("Nguyễn \u{202a}Văn An", "b063"),
            "licence.issuing_authority",
        ),
        invalid("a NUL in the reason a licence is amended", s.amend_reason("ghi\u{0}chú", "b064"), "reason"),
        invalid("DEL in the reason a licence is amended", s.amend_reason("ghi\u{7f}chú", "b065"), "reason"),
        invalid(
            "the reason a licence is amended: 2,001 characters (at most 2,000)",
            s.amend_reason(&"a".repeat(2001), "b066"),
            "reason",
        ),
        invalid(
            "a NUL in an amended issuing authority",
            s.amend_authority("Nguyễn\u{0}Văn An", "b067"),
            "licence.issuing_authority",
        ),
        invalid(
            "an escape (C0) in an amended issuing authority",
            s.amend_authority("Nguyễn \u{1b}Văn An", "b068"),
            "licence.issuing_authority",
        ),
        invalid(
            "an amended issuing authority: 301 characters (at most 300)",
            s.amend_authority(&"a".repeat(301), "b069"),
            "licence.issuing_authority",
        ),
        invalid("a NUL in the reason a licence is suspended", s.suspend_reason("ghi\u{0}chú", "b070"), "reason"),
        invalid(
            "a right-to-left override in the reason a licence is suspended",
            s.suspend_reason("ghi \u{202e}úhc", "b071"),
            "reason",
        ),
        invalid(
            "the reason a licence is suspended: 2,001 characters (at most 2,000)",
            s.suspend_reason(&"a".repeat(2001), "b072"),
            "reason",
        ),
        invalid("a NUL in the reason a licence is revoked", s.revoke_reason("ghi\u{0}chú", "b073"), "reason"),
        invalid(
            "a left-to-right isolate in the reason a licence is revoked",
            s.revoke_reason("ghi \u{2066}chú", "b074"),
            "reason",
        ),
        invalid(
            "the reason a licence is revoked: 2,001 characters (at most 2,000)",
            s.revoke_reason(&"a".repeat(2001), "b075"),
            "reason",
        ),
        invalid(
            "a NUL in a plan's decision number",
            s.plan_number("Nguyễn\u{0}Văn An", "b076"),
            "plan.decision_number",
        ),
        invalid(
            "a C1 control (U+0080) in a plan's decision number",
            s.plan_number("Nguyễn\u{80} Văn An", "b077"),
            "plan.decision_number",
        ),
        invalid(
            "a plan's decision number: 101 characters (at most 100)",
            s.plan_number(&"a".repeat(101), "b078"),
            "plan.decision_number",
        ),
        invalid("a NUL in a plan's lead unit", s.lead_unit("Nguyễn\u{0}Văn An", "b079"), "plan.lead_unit"),
        invalid(
            "a right-to-left isolate in a plan's lead unit",
            s.lead_unit("Nguyễn \u{2067}Văn An", "b080"),
            "plan.lead_unit",
        ),
        invalid(
            "a plan's lead unit: 301 characters (at most 300)",
            s.lead_unit(&"a".repeat(301), "b081"),
            "plan.lead_unit",
        ),
        invalid("a NUL in an inspector's name", s.inspector("Nguyễn\u{0}Văn An", "b082"), "inspection.inspectors[1]"),
        invalid(
            "a left-to-right embedding in an inspector's name",
            s.inspector("Nguyễn \u{202a}Văn An", "b083"),
            "inspection.inspectors[1]",
        ),
        invalid("a NUL in an inspection's findings", s.findings("ghi\u{0}chú", "b084"), "inspection.findings"),
        invalid(
            "an escape sequence (C0) in an inspection's findings",
            s.findings("ghi \u{1b}[31mchú", "b085"),
            "inspection.findings",
        ),
        invalid("DEL in an inspection's findings", s.findings("ghi\u{7f}chú", "b086"), "inspection.findings"),
        invalid(
            "a C1 control (NEL) in an inspection's findings",
            s.findings("ghi\u{85}chú", "b087"),
            "inspection.findings",
        ),
        invalid(
            "a right-to-left override in an inspection's findings",
            s.findings("ghi \u{202e}úhc", "b088"),
            "inspection.findings",
        ),
        invalid(
            "a left-to-right isolate in an inspection's findings",
            s.findings("ghi \u{2066}chú", "b089"),
            "inspection.findings",
        ),
        invalid(
            "a lone carriage return in an inspection's findings",
            s.findings("dòng một\rdòng hai", "b090"),
            "inspection.findings",
        ),
        invalid(
            "a form feed in an inspection's findings",
            s.findings("trang một\u{c}trang hai", "b091"),
            "inspection.findings",
        ),
        invalid(
            "an inspection's findings: 10,001 characters (at most 10,000)",
            s.findings(&"a".repeat(10001), "b092"),
            "inspection.findings",
        ),
        invalid(
            "a NUL in a violation's description",
            s.description("ghi\u{0}chú", "b093"),
            "inspection.violations[0].description",
        ),
        invalid(
            "an escape sequence (C0) in a violation's description",
            s.description("ghi \u{1b}[31mchú", "b094"),
            "inspection.violations[0].description",
        ),
        invalid(
            "a right-to-left override in a violation's description",
            s.description("ghi \u{202e}úhc", "b095"),
            "inspection.violations[0].description",
        ),
        invalid(
            "a lone carriage return in a violation's description",
            s.description("dòng một\rdòng hai", "b096"),
            "inspection.violations[0].description",
        ),
        invalid(
            "a violation's description: 4,001 characters (at most 4,000)",
            s.description(&"a".repeat(4001), "b097"),
            "inspection.violations[0].description",
        ),
        invalid("a NUL in an evidence URL", s.evidence_url("số 1\u{0} phố Huế", "b098"), "inspection.evidence[0].url"),
        invalid(
            "a right-to-left override in an evidence URL",
            s.evidence_url("số 1 \u{202e}ếuH ốhp", "b099"),
            "inspection.evidence[0].url",
        ),
        invalid(
            "a tab in a single-line field in an evidence URL",
            s.evidence_url("số 1\tphố Huế", "b100"),
            "inspection.evidence[0].url",
        ),
        invalid(
            "a line feed in a single-line field in an evidence URL",
            s.evidence_url("số 1\nphố Huế", "b101"),
            "inspection.evidence[0].url",
        ),
        invalid(
            "an evidence URL: 2,001 characters (at most 2,000)",
            s.evidence_url(&format!("https://{}", "a".repeat(1993)), "b102"),
            "inspection.evidence[0].url",
        ),
        invalid("a NUL in a decision number", s.decision_number("Nguyễn\u{0}Văn An", "b103"), "decision.number"),
        invalid(
            "a left-to-right embedding in a decision number",
            s.decision_number("Nguyễn \u{202a}Văn An", "b104"),
            "decision.number",
        ),
        invalid(
            "a decision number: 101 characters (at most 100)",
            s.decision_number(&"a".repeat(101), "b105"),
            "decision.number",
        ),
        invalid("a NUL in an offender's name", s.offender_name("Nguyễn\u{0}Văn An", "b106"), "decision.offender_name"),
        invalid(
            "a right-to-left isolate in an offender's name",
            s.offender_name("Nguyễn \u{2067}Văn An", "b107"),
            "decision.offender_name",
        ),
        invalid(
            "an offender's name: 301 characters (at most 300)",
            s.offender_name(&"a".repeat(301), "b108"),
            "decision.offender_name",
        ),
        invalid("a NUL in the note of a decision event", s.note("ghi\u{0}chú", "b109"), "note"),
        invalid("a right-to-left override in the note of a decision event", s.note("ghi \u{202e}úhc", "b110"), "note"),
        invalid("a form feed in the note of a decision event", s.note("trang một\u{c}trang hai", "b111"), "note"),
        invalid(
            "the note of a decision event: 4,001 characters (at most 4,000)",
            s.note(&"a".repeat(4001), "b112"),
            "note",
        ),
        invalid(
            "a NUL in the reason of a decision correction",
            s.correct_decision_reason("ghi\u{0}chú", "b113"),
            "reason",
        ),
        invalid(
            "a left-to-right isolate in the reason of a decision correction",
            s.correct_decision_reason("ghi \u{2066}chú", "b114"),
            "reason",
        ),
        invalid(
            "the reason of a decision correction: 2,001 characters (at most 2,000)",
            s.correct_decision_reason(&"a".repeat(2001), "b115"),
            "reason",
        ),
        invalid(
            "a NUL in a corrected decision number",
            s.corrected_number("Nguyễn\u{0}Văn An", "b116"),
            "decision.number",
        ),
        invalid(
            "a left-to-right embedding in a corrected offender's name",
            s.corrected_offender("Nguyễn \u{202a}Văn An", "b117"),
            "decision.offender_name",
        ),
        invalid("a NUL in the reason a decision is voided", s.void_decision_reason("ghi\u{0}chú", "b118"), "reason"),
        invalid(
            "a right-to-left override in the reason a decision is voided",
            s.void_decision_reason("ghi \u{202e}úhc", "b119"),
            "reason",
        ),
        invalid(
            "the reason a decision is voided: 2,001 characters (at most 2,000)",
            s.void_decision_reason(&"a".repeat(2001), "b120"),
            "reason",
        ),
        invalid("a NUL in an override's justification", s.justification("ghi\u{0}chú", "b121"), "justification"),
        invalid(
            "an escape sequence (C0) in an override's justification",
            s.justification("ghi \u{1b}[31mchú", "b122"),
            "justification",
        ),
        invalid(
            "a right-to-left override in an override's justification",
            s.justification("ghi \u{202e}úhc", "b123"),
            "justification",
        ),
        invalid(
            "a lone carriage return in an override's justification",
            s.justification("dòng một\rdòng hai", "b124"),
            "justification",
        ),
        invalid(
            "an override's justification: 2,001 characters (at most 2,000)",
            s.justification(&"a".repeat(2001), "b125"),
            "justification",
        ),
        invalid("a NUL in a narrative section", s.narrative("ghi\u{0}chú", "b126"), "text"),
        invalid("an escape sequence (C0) in a narrative section", s.narrative("ghi \u{1b}[31mchú", "b127"), "text"),
        invalid("DEL in a narrative section", s.narrative("ghi\u{7f}chú", "b128"), "text"),
        invalid("a C1 control (NEL) in a narrative section", s.narrative("ghi\u{85}chú", "b129"), "text"),
        invalid("a right-to-left override in a narrative section", s.narrative("ghi \u{202e}úhc", "b130"), "text"),
        invalid("a left-to-right isolate in a narrative section", s.narrative("ghi \u{2066}chú", "b131"), "text"),
        invalid("a lone carriage return in a narrative section", s.narrative("dòng một\rdòng hai", "b132"), "text"),
        invalid(
            "a narrative section: 20,001 characters (at most 20,000)",
            s.narrative(&"a".repeat(20001), "b133"),
            "text",
        ),
        invalid("a site listing 101 domains (at most 100)", s.domains(many_domains(101), "d001"), "site.domains"),
        invalid("an update to 101 domains (at most 100)", s.update_domains(many_domains(101), "d002"), "site.domains"),
        invalid(
            "a domain listed twice, once in capitals with a root dot",
            s.domains(vec!["Trang-Moi.vn".into(), "trang-moi.vn.".into()], "d003"),
            "site.domains[1]",
        ),
        invalid(
            "an update listing a domain twice, in its Unicode and its Punycode spelling",
            s.update_domains(vec!["văn-bản.vn".into(), "xn--vn-bn-tva3925b.vn".into()], "d004"),
            "site.domains[1]",
        ),
        invalid("a NUL in a domain", s.domains(vec!["trang\u{0}moi.vn".into()], "d005"), "site.domains[0]"),
        invalid(
            "a right-to-left override in a domain",
            s.domains(vec!["\u{202e}nv.iom-gnart".into()], "d006"),
            "site.domains[0]",
        ),
        invalid("an empty reason of a site correction", s.correct_reason(" \n\t ", "e001"), "reason"),
        invalid("an empty reason to void a decision", s.void_decision_reason("", "e002"), "reason"),
        invalid("an empty justification of an override", s.justification("  ", "e003"), "justification"),
        invalid("an empty corrected decision number", s.corrected_number(" ", "e004"), "decision.number"),
        invalid(
            "an evidence URL that is not http(s)",
            s.evidence_url("ftp://kiemtra.vn/a", "e005"),
            "inspection.evidence[0].url",
        ),
        Row {
            reason: "a well-justified override of a report that does not exist",
            call: s.justification("Số liệu đã được đối chiếu lại", "n001"),
            code: Code::NotFound,
            info: "NOT_FOUND",
            field: None,
        },
        Row {
            reason: "a clean note on a decision that does not exist",
            call: s.note("Đã nộp phạt\ntại kho bạc", "n002"),
            code: Code::NotFound,
            info: "NOT_FOUND",
            field: None,
        },
        Row {
            reason: "a clean reason to revoke a licence that does not exist",
            call: s.revoke_reason("Vi phạm\tnhiều lần", "n003"),
            code: Code::NotFound,
            info: "NOT_FOUND",
            field: None,
        },
    ]
}

async fn clients(node: &TestNode) -> Clients {
    Clients {
        registry: node.registry("01").await,
        inspection: node.inspection("01").await,
        reporting: node.reporting("01").await,
    }
}

async fn every_bad_text_or_domain_list_is_refused_on_its_field_and_changes_no_log(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01", "79"]).await else { return };
    let mut c = clients(&node).await;
    let seeded = seed(&mut c).await;
    let rows = rows(&seeded);
    assert!(rows.len() >= 150, "{} rows", rows.len());
    let mut failures = Vec::new();
    for row in rows {
        let before = heads(&node).await;
        let result = row.call.run(&mut c).await;
        let after = heads(&node).await;
        let mut problems = problems(result, row.code, row.info, row.field);
        if before != after {
            problems.push(format!(
                "log heads (registry, inspection, reporting of 01; of 79) moved from {before:?} to {after:?}"
            ));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", row.reason, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{backend:?}: {} rule(s) not kept:\n  {}", failures.len(), failures.join("\n  "));
    // The seed wrote exactly: the site, the application and the site's new status (registry),
    // the inspection and the decision (inspection); nothing in reporting or in 79.
    assert_eq!(heads(&node).await, [3, 2, 0, 0, 0, 0]);
}

async fn accepted_text_is_stored_composed_and_trimmed_with_the_line_breaks_of_multi_line_fields(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = clients(&node).await;
    // Every text below is sent decomposed (NFD: base letters followed by combining marks).
    let mut s = site("  Trang\tTin tu\u{31b}\u{301}c\n", &["tin-tuc.vn"])
        .owned_by("Co\u{302}ng ty A\u{301}nh Du\u{31b}o\u{31b}ng", "0100109106");
    s.notes = "  Do\u{300}ng mo\u{323}\u{302}t\r\n\tDo\u{300}ng hai\n".into();
    let owner = s.owner.as_mut().unwrap();
    owner.address = " So\u{302}\u{301} 1, pho\u{302}\u{301} Hue\u{302}\u{301}, Ha\u{300} No\u{323}\u{302}i ".into();
    owner.contact = "  0912 345 678 ".into();
    let got = c
        .registry
        .register_site(reg::RegisterSiteRequest { parent: HN.into(), site: Some(s), request_id: "nfc-site".into() })
        .await
        .expect("clean text is accepted")
        .into_inner();
    let stored = c.registry.get_site(reg::GetSiteRequest { name: got.name.clone() }).await.unwrap().into_inner();
    assert_eq!(stored.display_name, "Trang Tin tức", "a name collapses whitespace, tabs and line breaks included");
    assert_eq!(stored.notes, "Dòng một\n\tDòng hai", "notes keep tab and line feed; CR LF becomes LF");
    let owner = stored.owner.unwrap();
    assert_eq!(owner.display_name, "Công ty Ánh Dương");
    assert_eq!(owner.address, "Số 1, phố Huế, Hà Nội");
    assert_eq!(owner.contact, "0912 345 678");

    let mut x = inspection(&got.name, days(-1), vec![violation("ND15-99", days(-3))]);
    x.findings = "Trang chu\u{309}:\n\t- \u{111}a\u{306}ng tin kho\u{302}ng phe\u{301}p\r\n".into();
    x.violations[0].description = " \u{110}a\u{306}ng la\u{323}i tin cu\u{309}a ba\u{301}o kha\u{301}c ".into();
    let ins = record(&mut c.inspection, x, "nfc-inspection").await;
    assert_eq!(ins.findings, "Trang chủ:\n\t- đăng tin không phép");
    assert_eq!(ins.violations[0].description, "Đăng lại tin của báo khác");
}

async fn a_site_may_list_100_domains(backend: Backend) {
    let Some(node) = TestNode::start(backend, &["01"]).await else { return };
    let mut c = node.registry("01").await;
    let domains = many_domains(100);
    let got = c
        .register_site(reg::RegisterSiteRequest {
            parent: HN.into(),
            site: Some(site("Trang trăm tên miền", &domains.iter().map(String::as_str).collect::<Vec<_>>())),
            request_id: "hundred".into(),
        })
        .await
        .expect("100 domains are allowed")
        .into_inner();
    assert_eq!(got.domains, domains);
    assert_eq!(got.domain_details.len(), 100);
}

both_backends!(
    every_bad_text_or_domain_list_is_refused_on_its_field_and_changes_no_log,
    accepted_text_is_stored_composed_and_trimmed_with_the_line_breaks_of_multi_line_fields,
    a_site_may_list_100_domains,
);
