//! The written report: what the central department reads, as the rules of its day lay it out,
//! adding up, in XLSX and PDF.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use einfo_common::clock::{Clock, ManualClock};
use einfo_proto::central::v1 as central;
use einfo_proto::inspection::v1 as insp;
use einfo_proto::registry::v1 as reg;
use einfo_proto::reporting::v1 as pb;
use einfo_testkit::fixtures::secs_after;
use einfo_testkit::{Backend, both_backends, eventually};

use crate::inspection::{date, decision, inspection, issue, record, register, violation};
use crate::reporting::{compile, narrative, receipt, start, submit};

const P01: &str = "provinces/2008-01";
const P48: &str = "provinces/2008-48";
const P79: &str = "provinces/2008-79";
const DAY: i64 = 86_400;

/// The golden copy of a sheet of the document (reviewed by eye once; regenerate with
/// `EINFO_WRITE_GOLDEN=1`).
fn golden(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("reports").join(file)
}

/// Compares `text` with the golden file `file`, or writes it under `EINFO_WRITE_GOLDEN`.
fn assert_golden(file: &str, text: &str) {
    if std::env::var_os("EINFO_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden(file).parent().unwrap()).unwrap();
        std::fs::write(golden(file), text).unwrap();
    }
    let want = std::fs::read_to_string(golden(file)).expect("the golden file (EINFO_WRITE_GOLDEN=1 writes it)");
    assert_eq!(text, want, "the sheet differs from {}", golden(file).display());
}

/// Where the test leaves what a person should look at (the PDF's first page as PNG).
fn output_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-document")
}

/// The sheet `name` of a workbook as text, row by row from A1, numbers as integers.
fn sheet(xlsx: &[u8], name: &str) -> Vec<Vec<String>> {
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(xlsx.to_vec())).expect("an XLSX");
    let range = wb.worksheet_range(name).expect("the sheet");
    let (r0, c0) = range.start().unwrap_or((0, 0));
    let (r1, c1) = range.end().unwrap_or((0, 0));
    let mut out = vec![vec![String::new(); c1 as usize + 1]; r1 as usize + 1];
    for (r, row) in range.rows().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            out[r0 as usize + r][c0 as usize + c] = match cell {
                Data::Empty => String::new(),
                Data::String(s) => s.clone(),
                Data::Float(f) => format!("{}", *f as i64),
                Data::Int(i) => i.to_string(),
                other => other.to_string(),
            };
        }
    }
    out
}

fn to_csv(rows: &[Vec<String>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(r).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// Every table's rows add up to their total column, and every total row to the sum of the rows
/// above it (up to the table's head, the row starting "STT").
fn assert_tables_add_up(grid: &[Vec<String>]) {
    let num = |s: &str| s.parse::<i64>().ok();
    let mut checked = 0;
    for (i, row) in grid.iter().enumerate() {
        if row[0] != "STT" || row[1] != "Loại" {
            continue;
        }
        // Table I: the statuses, then "Tổng cộng".
        let total_col = row.iter().position(|h| h == "Tổng cộng").expect("a total column");
        let mut sums = vec![0_i64; row.len()];
        let mut r = i + 1;
        while grid[r][1] != "Tổng cộng" {
            let figures: Vec<i64> = grid[r][2..total_col].iter().map(|s| num(s).expect("a count")).collect();
            assert_eq!(num(&grid[r][total_col]), Some(figures.iter().sum()), "row {r} adds up: {:?}", grid[r]);
            for (c, s) in grid[r].iter().enumerate().skip(2) {
                sums[c] += num(s).unwrap_or(0);
            }
            r += 1;
        }
        for (c, s) in grid[r].iter().enumerate().skip(2) {
            assert_eq!(num(s), Some(sums[c]), "column {c} of the total row {r}");
        }
        checked += 1;
    }
    assert_eq!(checked, 1, "Table I was found");
}

/// The letter's own case, as a province would report it on 18/11/2014: a general website found
/// operating without a licence, a social network on trial that has applied, a licensed general
/// website; a joint inspection in October with a fine under Decree 174/2013. The written report,
/// submitted that day, has the heading of Circular 01/2011/TT-BNV's time, Table I adding up,
/// the violation cited to the point with its act, the fine in đồng, the narrative and the
/// signature block — cell by cell as the golden file; the PDF says the same.
async fn the_written_report_of_2014_is_an_administrative_document_that_adds_up(backend: Backend) {
    let t0 = chrono::DateTime::parse_from_rfc3339("2014-11-18T09:00:00+07:00").unwrap().to_utc();
    let clock = ManualClock::at(t0);
    let Some((centre, node)) = start(backend, &["01"], None, clock.clone()).await else { return };
    let now = clock.now();
    let mut r = node.registry("01").await;

    // The register: found unlicensed, on trial having applied, licensed.
    let found = register(&mut r, P01, "general-website", "tintuc-2014.vn").await;
    let social = register(&mut r, P01, "social-network", "mangxahoi-2014.vn").await;
    r.add_site_record(reg::AddSiteRecordRequest {
        site: social.name.clone(),
        record: Some(reg::SiteRecord {
            kind: reg::SiteRecordKind::Trial as i32,
            reference: "12/CV-STTTT".into(),
            start_time: Some(secs_after(now, -60 * DAY)),
            end_time: Some(secs_after(now, 60 * DAY)),
            ..Default::default()
        }),
        request_id: "trial".into(),
    })
    .await
    .expect("trial recorded");
    let applications = r.clone();
    let submit_application = |site: String, id: &'static str| {
        let mut r = applications.clone();
        async move {
            r.submit_application(reg::SubmitApplicationRequest {
                application: Some(reg::LicenceApplication {
                    site,
                    dossier_items: vec!["đơn đề nghị".into()],
                    receive_time: Some(secs_after(now, -5 * DAY)),
                    ..Default::default()
                }),
                request_id: id.into(),
            })
            .await
            .expect("application received")
            .into_inner()
        }
    };
    submit_application(social.name.clone(), "apply-social").await;
    let licensed = register(&mut r, P01, "general-website", "cophep-2014.vn").await;
    let app = submit_application(licensed.name.clone(), "apply-licensed").await;
    r.approve_application(reg::ApproveApplicationRequest {
        name: app.name,
        licence: Some(reg::Licence {
            number: "25/GP-STTTT".into(),
            issuing_authority: "Sở Thông tin và Truyền thông Hà Nội".into(),
            issue_time: Some(secs_after(now, -DAY)),
            expire_time: Some(secs_after(now, 365 * DAY)),
            ..Default::default()
        }),
        request_id: "approve".into(),
    })
    .await
    .expect("licensed");

    // A joint round with the police, decided 01/10/2014; its inspection on 06/10/2014 of an act
    // of 10/09/2014, fined 7,000,000 đồng.
    let mut c = node.inspection("01").await;
    let round = c
        .create_plan(insp::CreatePlanRequest {
            parent: P01.into(),
            plan: Some(insp::InspectionPlan {
                decision_number: "45/QĐ-STTTT".into(),
                decision_time: Some(date(2014, 10, 1)),
                period_start: Some(date(2014, 1, 1)),
                period_end: Some(date(2014, 10, 31)),
                lead_unit: "Thanh tra Sở".into(),
                round_kind: insp::RoundKind::Check as i32,
                issuer_title: "Giám đốc Sở Thông tin và Truyền thông".into(),
                coordinating_agencies: vec!["police".into()],
                target_sites: vec![found.name.clone()],
                ..Default::default()
            }),
            request_id: "round".into(),
        })
        .await
        .expect("round decided")
        .into_inner();
    let ins = record(
        &mut c,
        insp::Inspection {
            plan: round.name.clone(),
            r#type: insp::InspectionType::Scheduled as i32,
            ..inspection(&found.name, date(2014, 10, 6), vec![violation("ND174-64-1-b", date(2014, 9, 10))])
        },
        "i-2014",
    )
    .await;
    // A blog of a person, in the same round, fined 3,000,000 đồng on 25/10/2014.
    let mut blog = einfo_testkit::site("Blog Nguyễn Văn Hùng", &["blog-hung-2014.vn"]);
    blog.owner = Some(reg::Owner {
        kind: reg::OwnerKind::Person as i32,
        display_name: "Nguyễn Văn Hùng".into(),
        tax_code: "001204012345".into(),
        address: "12 Hàng Bài, Hoàn Kiếm, Hà Nội".into(),
        ..Default::default()
    });
    let blog = einfo_testkit::fixtures::register(&mut r, P01, blog).await;
    let blog_inspection = record(
        &mut c,
        insp::Inspection {
            plan: round.name.clone(),
            r#type: insp::InspectionType::Scheduled as i32,
            ..inspection(&blog.name, date(2014, 10, 7), vec![violation("ND174-64-1-b", date(2014, 9, 15))])
        },
        "i-2014-blog",
    )
    .await;
    issue(
        &mut c,
        insp::SanctionDecision {
            number: "46/QĐ-XPVPHC".into(),
            decision_time: Some(date(2014, 10, 25)),
            compliance_deadline: Some(date(2014, 11, 25)),
            offender_name: "Nguyễn Văn Hùng".into(),
            ..decision(&blog_inspection, insp::OffenderKind::Person, 3_000_000)
        },
        "fined-blog",
    )
    .await;
    // The social network, in the same round: content to be removed at the department's request.
    record(
        &mut c,
        insp::Inspection {
            plan: round.name.clone(),
            r#type: insp::InspectionType::Scheduled as i32,
            ..inspection(
                &social.name,
                date(2014, 10, 6),
                vec![insp::Violation {
                    handling: insp::Handling::RemovalRequest as i32,
                    ..violation("ND174-64-1-b", date(2014, 9, 20))
                }],
            )
        },
        "i-2014-social",
    )
    .await;
    issue(
        &mut c,
        insp::SanctionDecision {
            decision_time: Some(date(2014, 10, 20)),
            compliance_deadline: Some(date(2014, 11, 20)),
            ..decision(&ins, insp::OffenderKind::Organisation, 7_000_000)
        },
        "fined",
    )
    .await;

    // The campaign of letter 3224, as the centre issued it.
    let indicators = [
        "sites_by_kind_status",
        "sites_operating_by_kind_status",
        "sites_trial_by_kind_status",
        "rounds",
        "joint_rounds",
        "sites_inspected",
        "violations_by_code",
        "violations_handled",
        "sanction_decisions",
        "fines_imposed_vnd",
        "fines_collected_vnd",
        "warnings",
        "licences_suspended_by_decision",
        "licences_revoked_by_decision",
        "content_removals",
        "applications_received",
        "applications_pending",
        "applications_overdue",
        "licences_issued",
        "licences_expiring",
    ];
    let campaign = centre
        .admin()
        .create_campaign(central::CreateCampaignRequest {
            campaign: Some(central::Campaign {
                reference: "3224/BTTTT-PTTH&TTĐT".into(),
                title: "Kết quả rà soát, thống kê, thanh tra, kiểm tra trang thông tin điện tử tổng hợp, mạng xã hội"
                    .into(),
                recipient: "Cục Phát thanh, truyền hình và thông tin điện tử".into(),
                issuer: "Bộ Thông tin và Truyền thông".into(),
                reference_time: Some(date(2014, 11, 6)),
                period_start: Some(date(2014, 1, 1)),
                period_end: Some(secs_after(now, DAY)),
                as_of: Some(secs_after(now, DAY)),
                deadline: Some(secs_after(now, 2 * DAY)),
                lock_time: Some(secs_after(now, 10 * DAY)),
                targets: vec![P01.into()],
                indicators: indicators
                    .iter()
                    .map(|c| central::Indicator { code: (*c).into(), ..Default::default() })
                    .collect(),
                narrative_sections: vec!["assessment".into(), "recommendations".into()],
                ..Default::default()
            }),
            request_id: "campaign-3224".into(),
        })
        .await
        .expect("campaign created")
        .into_inner();
    let mut rep = node.reporting("01").await;
    eventually("the campaign reaches the node", || {
        let mut rep = rep.clone();
        let name = campaign.name.clone();
        async move {
            let got = rep.list_campaigns(pb::ListCampaignsRequest { parent: P01.into() }).await.ok()?;
            got.into_inner().campaigns.iter().any(|x| x.name == name).then_some(())
        }
    })
    .await;

    let report = compile(&mut rep, P01, &campaign.name).await.report.expect("a report");
    let report = narrative(
        &mut rep,
        &report,
        "assessment",
        "Sở đã rà soát toàn bộ trang thông tin điện tử tổng hợp, mạng xã hội trên địa bàn.\nPhối hợp với Công an thành phố kiểm tra, xử lý vi phạm.",
    )
    .await
    .expect("assessment");
    let report = narrative(&mut rep, &report, "recommendations", "Đề nghị Bộ ban hành hướng dẫn quản lý mạng xã hội.")
        .await
        .expect("recommendations");
    let document = pb::ReportDocument {
        number: "5".into(),
        issuer_abbreviation: "STTTT".into(),
        issuer: String::new(),
        place: "Hà Nội".into(),
        signer_authority: "KT. GIÁM ĐỐC".into(),
        signer_title: "PHÓ GIÁM ĐỐC".into(),
        signer_name: "Nguyễn Văn Bình".into(),
        copies_to: vec!["UBND Thành phố (để báo cáo)".into()],
        filed_by: "TTBCXB".into(),
    };
    // Bad details are refused on their field and change nothing.
    let refused = rep
        .set_report_document(pb::SetReportDocumentRequest {
            name: report.name.clone(),
            etag: report.etag.clone(),
            document: Some(pb::ReportDocument { number: "5a".into(), ..document.clone() }),
            request_id: "bad-number".into(),
        })
        .await
        .expect_err("a number that is not a number");
    crate::refusals::assert_refused(&refused, tonic::Code::InvalidArgument, "FIELD_INVALID", Some("document.number"));
    let report = rep
        .set_report_document(pb::SetReportDocumentRequest {
            name: report.name.clone(),
            etag: report.etag.clone(),
            document: Some(document),
            request_id: "document".into(),
        })
        .await
        .expect("document details")
        .into_inner();
    let report = submit(&mut rep, &report).await;
    assert_eq!(report.submitted_versions, 1);

    let export = |format: pb::ExportFormat| {
        let mut rep = rep.clone();
        let name = report.name.clone();
        async move { rep.export_report(pb::ExportReportRequest { name, version: 1, format: format as i32 }).await }
    };
    let xlsx = export(pb::ExportFormat::Xlsx).await.expect("XLSX").into_inner();
    let grid = sheet(&xlsx.content, "Báo cáo");
    assert_tables_add_up(&grid);
    let text = to_csv(&grid);
    for words in [
        "UBND THÀNH PHỐ HÀ NỘI",
        "SỞ THÔNG TIN VÀ TRUYỀN THÔNG",
        "Số: 05/BC-STTTT",
        "Hà Nội, ngày 18 tháng 11 năm 2014",
        "Kính gửi: Cục Phát thanh, truyền hình và thông tin điện tử.",
        "Thực hiện Công văn số 3224/BTTTT-PTTH&TTĐT ngày 06/11/2014 của Bộ Thông tin và Truyền thông",
        "Điều 64 khoản 1 điểm b Nghị định 174/2013/NĐ-CP",
    ] {
        assert!(text.contains(words), "the document says {words:?}:\n{text}");
    }
    for code in ["general-website", "LICENSED", "ND174", "provinces/"] {
        assert!(!text.contains(code), "no code {code:?} in the document:\n{text}");
    }
    assert_golden("province-01-2014.csv", &text);
    // The annexes: the register with the person's number masked, the decisions with their total.
    let sites = to_csv(&sheet(&xlsx.content, "Phụ lục 1"));
    let decisions_grid = sheet(&xlsx.content, "Phụ lục 2");
    let decisions = to_csv(&decisions_grid);
    for (annex, words) in [
        (&sites, "Giấy phép số 25/GP-STTTT ngày 17/11/2014"),
        (&sites, "Nguyễn Văn Hùng\nSố định danh: *********345"),
        (&sites, "Hoạt động không phép"),
        (&decisions, "Nguyễn Văn Hùng (cá nhân)\nSố định danh: *********345"),
        (&decisions, "Điều 64 khoản 1 điểm b Nghị định 174/2013/NĐ-CP"),
        (&decisions, "45/QĐ-XPVPHC\nngày 20/10/2014"),
    ] {
        assert!(annex.contains(words), "the annex says {words:?}:\n{annex}");
    }
    for annex in [&sites, &decisions, &text] {
        assert!(!annex.contains("001204012345"), "a person's number is masked:\n{annex}");
    }
    let amounts: Vec<i64> = decisions_grid[6..decisions_grid.len() - 1].iter().map(|r| r[6].parse().unwrap()).collect();
    assert_eq!(amounts, [7_000_000, 3_000_000], "the decisions' amounts");
    assert_eq!(decisions_grid.last().unwrap()[6], "10000000", "annex 2's total");
    // The lists agree with the tables: as many sites as Table I's total, as many decisions and
    // as much in fines as Table II says.
    let listed = sheet(&xlsx.content, "Phụ lục 1").iter().filter(|r| r[0].parse::<u32>().is_ok()).count();
    let figure = |label: &str| grid.iter().find(|r| r[1] == label).map(|r| r[grid[0].len() - 2].clone());
    let table_i_total = grid.iter().find(|r| r[1] == "Tổng cộng").map(|r| r[9].clone());
    assert_eq!(Some(listed.to_string()), table_i_total, "annex 1 lists every site Table I counts");
    assert_eq!(figure("Số quyết định xử phạt vi phạm hành chính"), Some(amounts.len().to_string()));
    assert_eq!(figure("Tổng số tiền phạt (đồng)"), Some(amounts.iter().sum::<i64>().to_string()));
    assert_golden("province-01-2014-phu-luc-1.csv", &sites);
    assert_golden("province-01-2014-phu-luc-2.csv", &decisions);
    // The figures with their codes, on the second sheet, are the CSV export's rows.
    let csv = export(pb::ExportFormat::Csv).await.expect("CSV").into_inner();
    let data = to_csv(&sheet(&xlsx.content, "Số liệu"));
    assert_eq!(data, String::from_utf8(csv.content).unwrap(), "the figures' sheet is the CSV");
    assert_golden("province-01-2014-so-lieu.csv", &data);

    // The same from the command line, as the province's reporting officer runs it.
    let data_dir = node.db.dir.join("cli");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("token-secret"), node.settings.auth.secret.clone().expect("the test secret")).unwrap();
    let file = data_dir.join("bao-cao.xlsx");
    let out = einfo_testkit::process::einfo()
        .args(["report", "export", "--campaign", &campaign.name, "--province", "01", "--version", "1"])
        .args(["--format", "xlsx", "--node", &node.url(), "--output"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .await
        .expect("run einfo report export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sheet(&std::fs::read(&file).unwrap(), "Báo cáo"), grid, "the command writes the same document");
    let out = einfo_testkit::process::einfo()
        .args(["report", "export", "--campaign", &campaign.name, "--province", "01", "--format", "docx"])
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .await
        .expect("run einfo report export");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("xlsx, pdf or csv"));

    // The PDF: made by LibreOffice where it is installed (CI installs it).
    match export(pb::ExportFormat::Pdf).await {
        Ok(pdf) => {
            let pdf = pdf.into_inner();
            assert_eq!(pdf.content_type, "application/pdf");
            assert!(pdf.content.starts_with(b"%PDF-"), "a PDF");
            let dir = output_dir();
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("province-01-2014-{backend:?}.pdf"));
            std::fs::write(&file, &pdf.content).unwrap();
            let text = tokio::process::Command::new("pdftotext")
                .args(["-layout"])
                .arg(&file)
                .arg("-")
                .output()
                .await
                .expect("pdftotext runs (poppler-utils)");
            let text = String::from_utf8_lossy(&text.stdout);
            for words in [
                "BÁO CÁO",
                "3224/BTTTT-PTTH&TTĐT",
                "SỞ THÔNG TIN VÀ TRUYỀN THÔNG",
                "Tổng cộng",
                "Phụ lục 1",
                "DANH SÁCH QUYẾT ĐỊNH XỬ PHẠT VI PHẠM HÀNH CHÍNH",
                "*********345",
            ] {
                assert!(text.contains(words), "the PDF says {words:?}:\n{text}");
            }
            // The document alone: not the figures' sheet with its codes.
            for code in ["sites_by_kind_status", "general-website", "ND174"] {
                assert!(!text.contains(code), "no code {code:?} in the PDF:\n{text}");
            }
            let png = dir.join(format!("province-01-2014-{backend:?}"));
            let shot = tokio::process::Command::new("pdftoppm")
                .args(["-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile"])
                .arg(&file)
                .arg(&png)
                .status()
                .await
                .expect("pdftoppm runs");
            assert!(shot.success(), "the first page rendered to {}", png.display());
        }
        Err(e) if !einfo_testkit::on_ci() => {
            eprintln!("PDF UNAVAILABLE (LibreOffice not installed here): {}", e.message());
        }
        Err(e) => panic!("the PDF on CI: {e:?}"),
    }
}

/// The centre's national workbook over three provinces of a campaign: Hà Nội on time, Hồ Chí
/// Minh late, Đà Nẵng missing. The timeliness sheet names each one's state; Table I has a row
/// for every one of the 63 provinces, numbers where a report came, empty cells where none did,
/// and the national totals of what came; the CSV has the figures of the two that reported.
async fn the_national_workbook_has_a_row_per_province_totals_and_each_ones_timeliness(backend: Backend) {
    let t0 = chrono::DateTime::parse_from_rfc3339("2014-11-18T09:00:00+07:00").unwrap().to_utc();
    let clock = ManualClock::at(t0);
    let Some((centre, node)) = start(backend, &["01", "48", "79"], None, clock.clone()).await else { return };
    let now = clock.now();
    let mut hanoi = node.registry("01").await;
    register(&mut hanoi, P01, "general-website", "hanoi-1.vn").await;
    register(&mut hanoi, P01, "social-network", "hanoi-2.vn").await;
    register(&mut node.registry("79").await, P79, "general-website", "hcm-1.vn").await;
    let targets = [P01, P48, P79];
    let campaign = centre
        .admin()
        .create_campaign(central::CreateCampaignRequest {
            campaign: Some(central::Campaign {
                reference: "3224/BTTTT-PTTH&TTĐT".into(),
                title: "Kết quả rà soát trang thông tin điện tử tổng hợp, mạng xã hội".into(),
                period_start: Some(date(2014, 1, 1)),
                period_end: Some(secs_after(now, DAY)),
                as_of: Some(secs_after(now, DAY)),
                // Before 20/11/2014: 2014-11-20T00:00:00+07:00.
                deadline: Some(secs_after(now, 39 * 3600)),
                lock_time: Some(secs_after(now, 10 * DAY)),
                targets: targets.iter().map(|t| t.to_string()).collect(),
                indicators: ["sites_by_kind_status", "sites_operating_by_kind_status", "rounds"]
                    .iter()
                    .map(|c| central::Indicator { code: (*c).into(), ..Default::default() })
                    .collect(),
                narrative_sections: vec!["assessment".into()],
                ..Default::default()
            }),
            request_id: "campaign".into(),
        })
        .await
        .expect("campaign created")
        .into_inner();
    let report_of = |code: &'static str, j: &'static str| {
        let node = &node;
        let name = campaign.name.clone();
        async move {
            let mut rep = node.reporting(code).await;
            eventually("the campaign reaches the node", || {
                let mut rep = rep.clone();
                let name = name.clone();
                async move {
                    let got = rep.list_campaigns(pb::ListCampaignsRequest { parent: j.into() }).await.ok()?;
                    got.into_inner().campaigns.iter().any(|x| x.name == name).then_some(())
                }
            })
            .await;
            let report = compile(&mut rep, j, &name).await.report.expect("a report");
            let report = submit(&mut rep, &report).await;
            receipt(&rep, &report.name, 1).await;
        }
    };
    report_of("01", P01).await;
    clock.advance(chrono::Duration::days(2));
    report_of("79", P79).await;

    let export = |format: central::WorkbookFormat| {
        let mut admin = centre.admin();
        let campaign = campaign.name.clone();
        async move {
            admin
                .export_campaign(central::ExportCampaignRequest { campaign, format: format as i32 })
                .await
                .expect("the national workbook")
                .into_inner()
        }
    };
    let xlsx = export(central::WorkbookFormat::Xlsx).await;
    std::fs::create_dir_all(output_dir()).unwrap();
    std::fs::write(output_dir().join(format!("national-{backend:?}.xlsx")), &xlsx.content).unwrap();
    let strings = |row: &[&str]| row.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let timeliness = sheet(&xlsx.content, "Tiến độ");
    assert_eq!(
        timeliness,
        vec![
            strings(&[
                "STT",
                "Tỉnh, thành phố",
                "Hạn nộp",
                "Nhận lần đầu",
                "Tình trạng",
                "Ngoại lệ",
                "Phiên bản mới nhất"
            ]),
            strings(&["1", "Thành phố Hà Nội", "20/11/2014 00:00", "18/11/2014 09:00", "Đúng hạn", "", "1"]),
            strings(&["2", "Thành phố Đà Nẵng", "20/11/2014 00:00", "", "Chưa nộp", "", ""]),
            strings(&["3", "Thành phố Hồ Chí Minh", "20/11/2014 00:00", "20/11/2014 09:00", "Trễ hạn", "", "1"]),
        ]
    );
    let table = sheet(&xlsx.content, "Bảng 1");
    assert_eq!(table.len(), 1 + 63 + 1, "a head, the 63 provinces, the national totals");
    let heads = strings(&[
        "STT",
        "Tỉnh, thành phố",
        "Đã được cấp phép",
        "Đang đề nghị cấp phép",
        "Đã đăng ký, thông báo",
        "Hoạt động không phép",
        "Bị đình chỉ",
        "Bị thu hồi giấy phép",
        "Giấy phép hết hạn",
        "Tổng cộng",
        "Trong đó: đang hoạt động",
    ]);
    assert_eq!(table[0], heads);
    assert_eq!(table[1], strings(&["1", "Thành phố Hà Nội", "0", "0", "0", "2", "0", "0", "0", "2", "2"]));
    let row_of = |name: &str| table.iter().find(|r| r[1] == name).unwrap_or_else(|| panic!("a row for {name}")).clone();
    let mut empty = vec![String::new(); heads.len() - 2];
    let mut da_nang = strings(&["", "Thành phố Đà Nẵng"]);
    da_nang.append(&mut empty);
    da_nang[0] = row_of("Thành phố Đà Nẵng")[0].clone();
    assert_eq!(row_of("Thành phố Đà Nẵng"), da_nang, "nothing came from Đà Nẵng: empty, not zero");
    assert_eq!(row_of("Thành phố Hồ Chí Minh")[2..], strings(&["0", "0", "0", "1", "0", "0", "0", "1", "1"])[..]);
    assert_eq!(
        table.last().unwrap(),
        &strings(&["", "Tổng cộng", "0", "0", "0", "3", "0", "0", "0", "3", "3"]),
        "the national totals"
    );
    let inspections = sheet(&xlsx.content, "Bảng 2");
    assert_eq!(
        inspections[0],
        strings(&["STT", "Tỉnh, thành phố", "Số cuộc thanh tra, kiểm tra trong kỳ (theo quyết định)"])
    );

    // The provinces' annexes, concatenated, each row with its province.
    let annex = sheet(&xlsx.content, "Phụ lục 1");
    let listed: Vec<Vec<String>> = annex.iter().map(|r| r[..5].to_vec()).collect();
    assert_eq!(
        listed,
        vec![
            strings(&[
                "STT",
                "Tỉnh, thành phố",
                "Loại",
                "Tên trang thông tin điện tử tổng hợp, mạng xã hội",
                "Tên miền"
            ]),
            strings(&["1", "Thành phố Hà Nội", "Trang thông tin điện tử tổng hợp", "Trang hanoi-1.vn", "hanoi-1.vn"]),
            strings(&["2", "Thành phố Hà Nội", "Mạng xã hội", "Trang hanoi-2.vn", "hanoi-2.vn"]),
            strings(&["3", "Thành phố Hồ Chí Minh", "Trang thông tin điện tử tổng hợp", "Trang hcm-1.vn", "hcm-1.vn"]),
        ]
    );
    let decisions = sheet(&xlsx.content, "Phụ lục 2");
    assert_eq!(decisions.len(), 2, "the head and a zero total: no decision in any province");
    assert_eq!((decisions[1][1].as_str(), decisions[1][7].as_str()), ("Tổng cộng", "0"));

    let csv = String::from_utf8(export(central::WorkbookFormat::Csv).await.content).unwrap();
    assert!(csv.starts_with("jurisdiction,province,version,timeliness,indicator,dimension,value\n"), "{csv}");
    assert!(
        csv.contains(
            "provinces/2008-01,Thành phố Hà Nội,1,Đúng hạn,sites_by_kind_status,general-website/UNLICENSED,1\n"
        ),
        "{csv}"
    );
    assert!(csv.contains("provinces/2008-48,Thành phố Đà Nẵng,,Chưa nộp,,,\n"), "{csv}");
    assert!(
        csv.contains(
            "provinces/2008-79,Thành phố Hồ Chí Minh,1,Trễ hạn,sites_by_kind_status,general-website/UNLICENSED,1\n"
        ),
        "{csv}"
    );

    // A province's people may not ask for it.
    let refused = centre
        .client_as(&einfo_testkit::FakeCentre::reporter_caller("01"))
        .export_campaign(central::ExportCampaignRequest {
            campaign: campaign.name.clone(),
            format: central::WorkbookFormat::Xlsx as i32,
        })
        .await
        .expect_err("a province's caller");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

both_backends!(
    the_written_report_of_2014_is_an_administrative_document_that_adds_up,
    the_national_workbook_has_a_row_per_province_totals_and_each_ones_timeliness,
);
