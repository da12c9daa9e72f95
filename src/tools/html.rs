//! The printable dossier: one self-contained HTML page (no external assets) an official can print or archive, with who read it, when, why, and the access-log seq of that read.

use crate::proto;
use crate::tools::render::{date, date_time, flag_lists, label, short, summary_line, zh};

/// Who read the dossier, for the page's footer: what the access log says of
/// this very read.
pub struct Footer {
    /// The reading system's URI.
    pub system: String,
    /// The officer the system acted for (empty when none was sent).
    pub officer: String,
    /// The access-log seq of the read; `None` when the row could not be found.
    pub seq: Option<i64>,
}

/// Text made safe for HTML element content and attribute values. Written
/// here because the page needs only these five characters escaped, which a
/// dependency would not make clearer.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table with `header` and `rows`, every cell escaped.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in header {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{}</td>", esc(cell)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

const STYLE: &str = "body{font-family:'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',sans-serif;\
margin:2em;color:#111;font-size:11pt}h1{font-size:18pt;margin:0 0 .2em}h2{font-size:13pt;\
border-bottom:1px solid #999;margin-top:1.4em}table{border-collapse:collapse;width:100%;\
margin:.4em 0}th,td{border:1px solid #bbb;padding:.25em .4em;text-align:left;vertical-align:top}\
th{background:#eee}td,.lines{white-space:pre-line}.rule{margin:.6em 0 0}.lines{margin:.1em 0 0 1em}.verdict{font-weight:bold}.muted{color:#555}footer{margin-top:2em;\
border-top:1px solid #999;padding-top:.5em;font-size:9pt;color:#333}\
@media print{body{margin:1cm}h2{break-after:avoid}tr{break-inside:avoid}}";

/// The whole page for `d`, read as `footer` says.
pub fn dossier_page(d: &proto::CadreDossier, footer: &Footer) -> String {
    let cadre = d.cadre.clone().unwrap_or_default();
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>干部廉政档案 Cadre dossier：{}</h1><p class=\"muted\">{} · 用途 purpose {} · 截至 as of {}</p>",
        esc(&cadre.display_name),
        esc(&cadre.name),
        esc(&label::<proto::Purpose>(d.purpose)),
        esc(&date_time(d.as_of_time.as_ref())),
    ));

    body.push_str("<h2>身份 Identity</h2>");
    let id_number = if cadre.id_number_masked {
        format!("{}（已遮蔽 masked）", cadre.id_number)
    } else {
        cadre.id_number.clone()
    };
    body.push_str(&table(
        &[
            "姓名 name",
            "性别 gender",
            "公民身份号码 id number",
            "出生日期 birth date",
            "管理单位 managing division",
        ],
        &[vec![
            cadre.display_name.clone(),
            zh::<proto::Gender>(cadre.gender),
            id_number,
            if cadre.birth_date.is_empty() {
                "—".into()
            } else {
                cadre.birth_date.clone()
            },
            cadre.managing_division.clone(),
        ]],
    ));
    if !cadre.posts.is_empty() {
        body.push_str("<h2>职务 Posts</h2>");
        let rows: Vec<Vec<String>> = cadre
            .posts
            .iter()
            .map(|p| {
                vec![
                    p.unit_name.clone(),
                    p.title.clone(),
                    if p.unit_head {
                        "一把手 unit head".into()
                    } else {
                        String::new()
                    },
                    format!(
                        "{} – {}",
                        p.start_date,
                        if p.end_date.is_empty() {
                            "今 now"
                        } else {
                            &p.end_date
                        }
                    ),
                ]
            })
            .collect();
        body.push_str(&table(&["单位 unit", "职务 title", "", "任职 term"], &rows));
    }
    if !d.unit_head_tenures.is_empty() {
        body.push_str("<h2>一把手任职与经济责任审计 Unit-head tenures and audits</h2>");
        let rows: Vec<Vec<String>> = d
            .unit_head_tenures
            .iter()
            .map(|t| {
                vec![
                    format!("{}\n{}", t.unit_name, t.unit_credit_code),
                    format!(
                        "{} – {}",
                        t.start_date,
                        if t.end_date.is_empty() {
                            "今 now"
                        } else {
                            &t.end_date
                        }
                    ),
                    crate::tools::render::tenure_status(t, &cadre.name),
                ]
            })
            .collect();
        body.push_str(&table(&["单位 unit", "任职 term", "审计 audits"], &rows));
    }

    if let Some(f) = &d.flags {
        body.push_str("<h2>规则结论与提示 Verdict and flags</h2>");
        body.push_str(&format!(
            "<p class=\"verdict\">{}</p>",
            esc(&label::<proto::Verdict>(f.verdict))
        ));
        if f.promotion_barred_permanently {
            body.push_str("<p>影响期 promotion barred: 永久 permanently</p>");
        } else if !f.promotion_barred_until.is_empty() {
            body.push_str(&format!(
                "<p>影响期至 promotion barred until {}</p>",
                esc(&f.promotion_barred_until)
            ));
        }
        let mut rows = Vec::new();
        for (name, list) in flag_lists(f) {
            if !list.is_empty() {
                let names: Vec<&str> = list.iter().map(|r| short(r, &cadre.name)).collect();
                rows.push(vec![name.to_string(), names.join("\n")]);
            }
        }
        if !rows.is_empty() {
            body.push_str(&table(&["提示 flag", "记录 records"], &rows));
        }
        // One block per rule, its id in small print, its records under it.
        let seen: Vec<proto::Record> = d.sections.iter().flat_map(|s| s.records.clone()).collect();
        for g in crate::tools::render::by_rule(&f.reasons) {
            body.push_str(&format!(
                "<p class=\"rule\"><b>{}</b> <small class=\"muted\">{}</small></p><p class=\"lines\">{}</p>",
                esc(&g.heading()),
                esc(g.rule),
                esc(&g.lines(&cadre.name, &seen).join("\n"))
            ));
        }
    }

    if let Some(v) = &d.vetting {
        body.push_str("<h2>廉政意见 Integrity opinion</h2>");
        body.push_str(&format!(
            "<p>{} · {} · 答复期限 due {}{}</p>",
            esc(&v.opinion_request),
            esc(&label::<proto::OpinionRequestState>(v.state)),
            esc(&v.due_date),
            if v.overdue {
                " · 已逾期 overdue"
            } else {
                ""
            }
        ));
        let rows: Vec<Vec<String>> = v
            .replies
            .iter()
            .map(|r| {
                vec![
                    label::<proto::Verdict>(r.verdict),
                    r.text.clone(),
                    r.signer.clone(),
                    date(r.as_of_time.as_ref()),
                    r.correction_reason.clone(),
                    if r.deviation {
                        format!(
                            "轻于规则草稿（{}）：{}",
                            label::<proto::Verdict>(r.draft_verdict),
                            r.deviation_reason
                        )
                    } else {
                        String::new()
                    },
                    if r.stale {
                        "已过时 stale".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        if rows.is_empty() {
            body.push_str("<p>尚未答复 no reply yet</p>");
        } else {
            body.push_str(&table(
                &[
                    "意见 verdict",
                    "内容 text",
                    "签发 signer",
                    "截至 as of",
                    "更正理由 correction",
                    "偏离草稿 deviation",
                    "",
                ],
                &rows,
            ));
        }
    }

    if let Some(r) = &d.readiness {
        body.push_str(&format!(
            "<h2>凡提四必 Readiness</h2><p class=\"verdict\">{}</p>",
            if r.ready {
                "四项均已满足 all four satisfied"
            } else {
                "尚不具备条件 not ready"
            }
        ));
        let rows: Vec<Vec<String>> = r
            .checks
            .iter()
            .map(|c| {
                vec![
                    label::<proto::ReadinessItem>(c.item),
                    label::<proto::ReadinessState>(c.state),
                    c.reason.clone(),
                    c.cited
                        .iter()
                        .map(|n| short(n, &cadre.name).to_string())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ]
            })
            .collect();
        body.push_str(&table(
            &["事项 item", "状态 state", "说明 reason", "依据 records"],
            &rows,
        ));
    }

    for s in d.sections.iter().filter(|s| !s.records.is_empty()) {
        body.push_str(&format!(
            "<h2>{}</h2>",
            esc(&label::<proto::RecordKind>(s.kind))
        ));
        let rows: Vec<Vec<String>> = s
            .records
            .iter()
            .map(|r| {
                vec![
                    r.event_date.clone(),
                    summary_line(r),
                    crate::tools::render::system(&r.owner_system).to_string(),
                ]
            })
            .collect();
        body.push_str(&table(&["日期 date", "内容 content", "来源 source"], &rows));
    }

    let officer = if footer.officer.is_empty() {
        "—"
    } else {
        &footer.officer
    };
    let seq = footer
        .seq
        .map_or_else(|| "—".to_string(), |s| s.to_string());
    body.push_str(&format!(
        "<footer>查阅系统 reading system {} · 经办人 officer {} · 查阅时间 read at {} · 用途 purpose {} · \
         访问日志序号 access-log seq {}</footer>",
        esc(&footer.system),
        esc(officer),
        esc(&date_time(d.as_of_time.as_ref())),
        esc(&label::<proto::Purpose>(d.purpose)),
        esc(&seq)
    ));
    format!(
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>干部廉政档案 {}</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>\n",
        esc(&cadre.display_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_the_page_is_self_contained() {
        let d = proto::CadreDossier {
            cadre: Some(proto::Cadre {
                display_name: "<script>alert(1)</script>".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let page = dossier_page(
            &d,
            &Footer {
                system: "urn:cadrex:system:discipline:360821:d".into(),
                officer: "王五 & \"李四\"".into(),
                seq: Some(42),
            },
        );
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("王五 &amp; &quot;李四&quot;"));
        assert!(page.contains("访问日志序号 access-log seq 42"));
        for external in ["src=", "href=", "http://", "https://", "@import"] {
            assert!(!page.contains(external), "{external}");
        }
    }
}
