//! How the vetting workflow reads at a terminal: the dossier with its verdict, flags and sections, opinion requests, drafts and replies.

use super::*;

/// A dossier for a person at a terminal: the rule verdict and flags, identity
/// and posts, the vetting request, then one section per kind that has records.
pub fn render_dossier(d: &proto::CadreDossier) -> String {
    let mut out = String::new();
    let cadre = d.cadre.clone().unwrap_or_default();
    out.push_str(&format!(
        "档案 dossier  {}  用途 purpose {}  截至 as of {}\n",
        cadre.name,
        label::<proto::Purpose>(d.purpose),
        date(d.as_of_time.as_ref())
    ));
    if let Some(f) = &d.flags {
        out.push_str(&format!(
            "规则结论 rule verdict: {}\n",
            label::<proto::Verdict>(f.verdict)
        ));
        if f.promotion_barred_permanently {
            out.push_str("影响期 promotion barred: 永久 permanently\n");
        } else if !f.promotion_barred_until.is_empty() {
            out.push_str(&format!(
                "影响期 promotion barred until {}\n",
                f.promotion_barred_until
            ));
        }
        // The rules below repeat most bar reasons word for word.
        for why in &f.bar_reasons {
            if !f.reasons.iter().any(|r| &r.description == why) {
                out.push_str(&wrap(&format!("- {why}"), 2));
            }
        }
        let mut flags = table(&["提示 flag", "记录 records"]);
        let mut any = false;
        for (name, list) in flag_lists(f) {
            if !list.is_empty() {
                any = true;
                let names: Vec<&str> = list.iter().map(|r| short(r, &cadre.name)).collect();
                flags.add_row(vec![name.to_string(), names.join("\n")]);
            }
        }
        if any {
            out.push_str(&format!("{flags}\n"));
        }
        if !f.reasons.is_empty() {
            let seen: Vec<proto::Record> =
                d.sections.iter().flat_map(|s| s.records.clone()).collect();
            out.push_str(&render_reasons(&f.reasons, &cadre.name, &seen));
        }
    }
    if d.cadre.is_some() {
        out.push('\n');
        out.push_str(&render_cadre(&cadre));
        out.push_str(&render_tenures(&d.unit_head_tenures, &cadre.name));
    }
    if let Some(v) = &d.vetting {
        out.push('\n');
        out.push_str(&render_vetting(v, &cadre.name));
    }
    if let Some(r) = &d.readiness {
        let seen: Vec<proto::Record> = d.sections.iter().flat_map(|s| s.records.clone()).collect();
        out.push('\n');
        out.push_str(&render_readiness(r, &seen));
    }
    for s in &d.sections {
        if s.records.is_empty() {
            continue;
        }
        // One block per record rather than a table: a record's name is 40
        // columns that a table would break, and operators copy it whole.
        out.push_str(&format!(
            "\n{} ({})\n",
            label::<proto::RecordKind>(s.kind),
            s.records.len()
        ));
        for r in &s.records {
            let source = r
                .provenance
                .as_ref()
                .map(|p| format!("  来源 source {}", system(&p.submitting_system)))
                .unwrap_or_default();
            out.push_str(&wrap(
                &format!("{}  {}{source}", short(&r.name, &cadre.name), r.event_date),
                2,
            ));
            let mut content = summary_line(r);
            if r.view == proto::RecordView::Summary as i32 {
                content.push_str(" (摘要 summary)");
            }
            out.push_str(&wrap(&content, 6));
        }
    }
    fit(out)
}

/// The vetting request a dossier names, with every reply for its cadre.
fn render_vetting(v: &proto::DossierVetting, cadre: &str) -> String {
    let mut out = format!(
        "廉政意见请求 vetting request {}  {}{}  回复期限 due {}\n",
        v.opinion_request,
        label::<proto::OpinionRequestState>(v.state),
        if v.overdue { "  逾期 OVERDUE" } else { "" },
        v.due_date
    );
    if !v.replies.is_empty() {
        out.push_str(&render_replies(&v.replies, cadre));
    }
    out
}

/// Replies oldest first: verdict, as-of date, signer, text and why a
/// correction was made.
fn render_replies(replies: &[proto::OpinionReply], cadre: &str) -> String {
    let mut t = table(&["结论 verdict", "截至 as of", "签发 signer", "意见 text"]);
    for p in replies {
        let mut text = p.text.clone();
        if !p.correction_reason.is_empty() {
            text.push_str(&format!("\n更正理由 correction: {}", p.correction_reason));
        }
        if p.deviation {
            text.push_str(&format!(
                "\n轻于规则草稿（{}）的理由 deviation: {}",
                label::<proto::Verdict>(p.draft_verdict),
                p.deviation_reason
            ));
        }
        if !p.cited_records.is_empty() {
            let cited: Vec<&str> = p.cited_records.iter().map(|r| short(r, cadre)).collect();
            text.push_str(&format!("\n引用 cites: {}", cited.join(", ")));
        }
        let mut verdict = label::<proto::Verdict>(p.verdict);
        if p.stale {
            verdict.push_str("\n已过时 STALE");
        }
        t.add_row(vec![
            verdict,
            date(p.as_of_time.as_ref()),
            p.signer.clone(),
            text,
        ]);
    }
    format!("{t}\n")
}

/// The reasons of one rule: a draft lists one reason per record a rule
/// applies to, so a reader is shown one heading per rule with its records
/// under it.
pub struct RuleGroup<'a> {
    /// The stable id, for systems and for the small print.
    pub rule: &'a str,
    /// The zh-CN name officials read (the id when the server sent none).
    pub title: &'a str,
    /// The most severe verdict among its reasons.
    pub verdict: i32,
    /// The latest end of its bars; "" when none.
    pub barred_until: &'a str,
    pub barred_permanently: bool,
    pub reasons: Vec<&'a proto::DraftReason>,
}

impl RuleGroup<'_> {
    /// "党纪处分影响期 — 不同意 NOT_AGREE, 影响期至 barred until 2027-01-01".
    pub fn heading(&self) -> String {
        let mut head = format!("{} — {}", self.title, label::<proto::Verdict>(self.verdict));
        if self.barred_permanently {
            head.push_str(", 永久 barred permanently");
        } else if !self.barred_until.is_empty() {
            head.push_str(&format!(", 影响期至 barred until {}", self.barred_until));
        }
        head
    }

    /// One line per cited record (its one-line summary from `records`, when
    /// held) followed by what the rule says of it, when that adds anything.
    pub fn lines(&self, cadre: &str, records: &[proto::Record]) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.reasons {
            for name in &r.records {
                out.push(match records.iter().find(|x| &x.name == name) {
                    Some(x) => format!("- {}  {}", short(name, cadre), summary_line(x)),
                    None => format!("- {}", short(name, cadre)),
                });
            }
            if !r.description.is_empty() {
                out.push(format!("  {}", r.description));
            }
        }
        out
    }
}

/// `reasons` grouped by rule, rules in the order they first appear (a draft
/// lists the most severe first).
pub fn by_rule(reasons: &[proto::DraftReason]) -> Vec<RuleGroup<'_>> {
    let mut groups: Vec<RuleGroup> = Vec::new();
    for r in reasons {
        let group = match groups.iter_mut().position(|g| g.rule == r.rule) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(RuleGroup {
                    rule: &r.rule,
                    title: if r.rule_title.is_empty() {
                        &r.rule
                    } else {
                        &r.rule_title
                    },
                    verdict: r.verdict,
                    barred_until: "",
                    barred_permanently: false,
                    reasons: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        group.verdict = group.verdict.max(r.verdict);
        group.barred_permanently |= r.barred_permanently;
        // YYYY-MM-DD compares as text.
        if r.barred_until.as_str() > group.barred_until {
            group.barred_until = &r.barred_until;
        }
        group.reasons.push(r);
    }
    groups
}

/// Applying rules, one heading per rule with the rule id in small print and
/// its cited records under it; `records` gives the one-line summary of the
/// records it holds.
fn render_reasons(
    reasons: &[proto::DraftReason],
    cadre: &str,
    records: &[proto::Record],
) -> String {
    let mut out = String::new();
    for g in by_rule(reasons) {
        out.push_str(&wrap(&g.heading(), 0));
        out.push_str(&wrap(&format!("(规则 rule {})", g.rule), 2));
        for line in g.lines(cadre, records) {
            out.push_str(&wrap(&line, 2));
        }
    }
    out
}

/// An opinion request with each cadre's latest reply, for a terminal.
pub fn render_request(r: &proto::OpinionRequest) -> String {
    let mut out = format!(
        "{}  {}{}  {}\n",
        r.name,
        label::<proto::OpinionRequestState>(r.state),
        if r.overdue { "  逾期 OVERDUE" } else { "" },
        label::<proto::OpinionPurpose>(r.purpose),
    );
    out.push_str(&format!(
        "  回复期限 due {}  提出 asked {}  by {}\n",
        r.due_date,
        date(r.create_time.as_ref()),
        system(&r.requester)
    ));
    if !r.note.is_empty() {
        out.push_str(&wrap(&format!("说明 note: {}", r.note), 2));
    }
    if !r.withdraw_reason.is_empty() {
        out.push_str(&wrap(
            &format!("撤回理由 withdrawn: {}", r.withdraw_reason),
            2,
        ));
    }
    for w in &r.warnings {
        out.push_str(&wrap(&format!("warning: {w}"), 2));
    }
    for c in &r.cadre_opinions {
        match &c.reply {
            None => out.push_str(&format!("  {}  (待回复 pending)\n", c.cadre)),
            Some(p) => {
                out.push_str(&format!("  {}\n", c.cadre));
                // The whole history, oldest first: each correction below the
                // reply it corrects, the one in force last.
                let mut history = c.earlier_replies.clone();
                history.push(p.clone());
                if history.len() > 1 {
                    out.push_str(&wrap(
                        &format!(
                            "{} 次答复 replies, 最后一次有效 the last in force",
                            history.len()
                        ),
                        4,
                    ));
                }
                out.push_str(&render_replies(&history, &c.cadre));
            }
        }
    }
    fit(out)
}

/// A draft, grouped by rule, each cited record with its one-line summary
/// (from `records`, the cadre's records as the caller sees them).
pub fn render_draft(d: &proto::OpinionDraft, records: &[proto::Record]) -> String {
    let mut out = format!(
        "{}  草拟结论 draft verdict: {}  (截至 as of {})\n",
        d.cadre,
        label::<proto::Verdict>(d.verdict),
        d.as_of_date
    );
    if d.barred_permanently {
        out.push_str("影响期 barred: 永久 permanently\n");
    } else if !d.barred_until.is_empty() {
        out.push_str(&format!("影响期 barred until {}\n", d.barred_until));
    }
    out.push_str(&render_reasons(&d.reasons, &d.cadre, records));
    fit(out)
}

/// 凡提四必 for a person: one heading per must, its standing and reason, and
/// what decides it (a record with its one-line summary from `records`, or the
/// reply).
pub fn render_readiness(r: &proto::VettingReadiness, records: &[proto::Record]) -> String {
    let mut out = format!(
        "凡提四必 readiness  {}  {}  截至 as of {}\n{}\n",
        r.opinion_request,
        r.cadre,
        r.as_of_date,
        if r.ready {
            "可以提交讨论 ready: 四项均已满足 all four satisfied"
        } else {
            "尚不具备条件 not ready"
        }
    );
    for c in &r.checks {
        out.push_str(&wrap(
            &format!(
                "{} — {}",
                label::<proto::ReadinessItem>(c.item),
                label::<proto::ReadinessState>(c.state)
            ),
            0,
        ));
        out.push_str(&wrap(&c.reason, 2));
        for name in &c.cited {
            let line = match records.iter().find(|x| &x.name == name) {
                Some(x) => format!("- {}  {}", short(name, &r.cadre), summary_line(x)),
                None => format!("- {name}"),
            };
            out.push_str(&wrap(&line, 2));
        }
    }
    fit(out)
}

/// A reply just given.
pub fn render_reply(p: &proto::OpinionReply) -> String {
    let mut out = format!("{}\n", p.name);
    out.push_str(&render_replies(std::slice::from_ref(p), &p.cadre));
    out
}
