#!/usr/bin/env python3
"""Writes the example import files of examples/import/ (deterministic; Python 3 stdlib only).

Run from anywhere: python3 examples/import/generate.py [OUT_DIR]. Every value is
fictitious. The same seed always gives byte-identical files, so the generated
files are committed and regenerating them shows no diff.
"""

import csv
import datetime as dt
import json
import os
import random
import sys

SEED = 3608212025
DIVISION = "360821"  # 吉安县, Ji'an prefecture, Jiangxi
N_CADRES = 200
N_FINDINGS = 10_000

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
rng = random.Random(SEED)

# --- identifiers (algorithms as in src/domain/ids.rs) ------------------------

ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def id_number(birthplace, birth, seq3):
    """18-character 公民身份号码 with the GB 11643 (ISO 7064 MOD 11-2) check character."""
    first17 = f"{birthplace}{birth:%Y%m%d}{seq3:03d}"
    s = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS))
    return first17 + ID_CHECK[s % 11]


CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def org_code(body8):
    """9-character 组织机构代码 with its GB 11714 check character."""
    value = lambda c: int(c) if c.isdigit() else ord(c) - ord("A") + 10
    s = sum(value(c) * w for c, w in zip(body8, [3, 7, 9, 10, 5, 8, 4, 2]))
    c = 11 - s % 11
    return body8 + ("X" if c == 10 else "0" if c == 11 else str(c))


def credit_code(org9):
    """统一社会信用代码 of a Party or government body (登记管理部门 1, 机构类别 1) per GB 32100."""
    first17 = "11" + DIVISION + org9
    s = sum(CREDIT_CHARS.index(c) * w for c, w in zip(first17, CREDIT_WEIGHTS))
    return first17 + CREDIT_CHARS[(31 - s % 31) % 31]


# --- helpers ------------------------------------------------------------------


def day(s):
    return dt.date.fromisoformat(s)


def rand_date(lo, hi):
    lo, hi = day(lo) if isinstance(lo, str) else lo, day(hi) if isinstance(hi, str) else hi
    return lo + dt.timedelta(days=rng.randint(0, (hi - lo).days))


def weighted(pairs):
    values, weights = zip(*pairs)
    return rng.choices(values, weights=weights)[0]


def write_csv(name, header, rows):
    with open(os.path.join(OUT, name), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow([r.get(h, "") for h in header])


COMMON = ["cadre_id_number", "source_record_id", "source_version", "classification"]

# --- cadres -------------------------------------------------------------------

SURNAMES = list(
    "王李张刘陈杨黄赵周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
    "苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史"
    "顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文肖"
) + ["欧阳"]
MALE_GIVEN = "伟强军勇杰涛斌超明辉刚健鹏华平建国志忠文兵宏海峰俊磊亮晖荣新春林德胜立卫东红光"
FEMALE_GIVEN = "芳娟敏静丽艳玲霞燕萍红英华梅琴兰凤洁慧婷颖岚雪琳莉秀云"

UNITS = [
    # (unit name, head title, deputy title, township?)
    ("吉安县财政局", "局长", "副局长", False),
    ("吉安县发展和改革委员会", "主任", "副主任", False),
    ("吉安县教育体育局", "局长", "副局长", False),
    ("吉安县自然资源局", "局长", "副局长", False),
    ("吉安县住房和城乡建设局", "局长", "副局长", False),
    ("吉安县交通运输局", "局长", "副局长", False),
    ("吉安县水利局", "局长", "副局长", False),
    ("吉安县农业农村局", "局长", "副局长", False),
    ("吉安县卫生健康委员会", "主任", "副主任", False),
    ("吉安县人力资源和社会保障局", "局长", "副局长", False),
    ("吉安县市场监督管理局", "局长", "副局长", False),
    ("吉安县民政局", "局长", "副局长", False),
    ("吉安县文化广电新闻出版旅游局", "局长", "副局长", False),
    ("吉安县林业局", "局长", "副局长", False),
    ("吉安县商务局", "局长", "副局长", False),
    ("吉安县应急管理局", "局长", "副局长", False),
    ("吉安县医疗保障局", "局长", "副局长", False),
    ("吉安县城市管理局", "局长", "副局长", False),
    ("吉安县工业和信息化局", "局长", "副局长", False),
    ("吉安县乡村振兴局", "局长", "副局长", False),
    ("吉安县统计局", "局长", "副局长", False),
    ("吉安县退役军人事务局", "局长", "副局长", False),
    ("吉安县司法局", "局长", "副局长", False),
    ("吉安县科学技术局", "局长", "副局长", False),
    ("吉安县敦厚镇人民政府", "镇长", "副镇长", True),
    ("吉安县永阳镇人民政府", "镇长", "副镇长", True),
    ("吉安县天河镇人民政府", "镇长", "副镇长", True),
    ("吉安县横江镇人民政府", "镇长", "副镇长", True),
    ("吉安县固江镇人民政府", "镇长", "副镇长", True),
    ("吉安县万福镇人民政府", "镇长", "副镇长", True),
    ("吉安县永和镇人民政府", "镇长", "副镇长", True),
    ("吉安县桐坪镇人民政府", "镇长", "副镇长", True),
    ("吉安县凤凰镇人民政府", "镇长", "副镇长", True),
    ("吉安县油田镇人民政府", "镇长", "副镇长", True),
    ("吉安县敖城镇人民政府", "镇长", "副镇长", True),
    ("吉安县北源乡人民政府", "乡长", "副乡长", True),
    ("吉安县大冲乡人民政府", "乡长", "副乡长", True),
    ("吉安县登龙乡人民政府", "乡长", "副乡长", True),
    ("吉安县安塘乡人民政府", "乡长", "副乡长", True),
    ("吉安县官田乡人民政府", "乡长", "副乡长", True),
]
BIRTHPLACES = ["360821"] * 6 + ["360802", "360803", "360822", "360824", "360826", "360830", "360881"]

units = []
for i, (name, head, deputy, township) in enumerate(UNITS):
    org = org_code(f"0{15 + i:02d}{rng.randint(0, 99999):05d}")
    units.append({"name": name, "head": head, "deputy": deputy, "township": township,
                  "code": credit_code(org)})

cadres, used_ids, used_names = [], set(), set()
for i in range(N_CADRES):
    unit = units[i % len(units)]
    slot = i // len(units)  # 0 = unit head, then deputies
    male = rng.random() < (0.9 if slot == 0 else 0.75)
    while True:
        name = rng.choice(SURNAMES) + "".join(
            rng.choice(MALE_GIVEN if male else FEMALE_GIVEN) for _ in range(rng.choice([1, 2, 2])))
        if name not in used_names:
            used_names.add(name)
            break
    while True:
        birth = rand_date("1966-01-01", "1988-12-31")
        seq = rng.randint(0, 49) * 20 + rng.randint(0, 4) * 2 + (1 if male else 0)
        idn = id_number(rng.choice(BIRTHPLACES), birth, seq % 1000)
        if idn not in used_ids:
            used_ids.add(idn)
            break
    title = unit["head"] if slot == 0 else unit["deputy"]
    if slot == 0 and rng.random() < 0.5:
        title = "党委书记" if unit["township"] else "党组书记、" + unit["head"]
    cadres.append({
        "display_name": name,
        "gender": "MALE" if male else "FEMALE",
        "id_number": idn,
        "birth_date": birth.isoformat(),
        "managing_division": DIVISION,
        "unit_name": unit["name"],
        "unit_credit_code": unit["code"],
        "title": title,
        "rank": "正科级" if slot == 0 else "副科级",
        "unit_head": "true" if slot == 0 else "false",
        "start_date": rand_date("2016-03-01", "2023-12-31").isoformat(),
        "end_date": "",
    })

write_csv("cadres.csv", ["display_name", "gender", "id_number", "birth_date", "managing_division",
                         "unit_name", "unit_credit_code", "title", "rank", "unit_head",
                         "start_date", "end_date"], cadres)

# --- audit engagements and findings --------------------------------------------

engagements = []
for i, c in enumerate(cadres, start=1):
    departure = rng.random() < 0.3
    start = max(day(c["start_date"]), day("2020-01-01"))
    end = rand_date("2024-03-31", "2024-12-31") if departure else day("2024-12-31")
    report = rand_date("2025-03-01", "2025-09-30")
    engagements.append({
        "cadre_id_number": c["id_number"],
        "source_record_id": f"AE-2025-{i:04d}",
        "source_version": "1",
        "classification": "INTERNAL",
        "type": "DEPARTURE" if departure else "IN_OFFICE",
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "report_number": f"吉县审经责报〔2025〕{i}号",
        "audited_post": c["unit_name"] + c["title"],
        "report_date": report.isoformat(),
        # The unit the engagement audited, so that the exchange matches it to the cadre's
        # unit-head tenure there rather than guessing from the period.
        "audited_unit_credit_code": c["unit_credit_code"],
    })
# Every fifth unit head in the post since 2021 or earlier has only an audit to 2022 on record, so
# that from 2026 on the audit office's worklist (任职满三年必审) has entries on whatever day the
# examples are loaded. Changed after the draws above, so that the random sequence, and with it
# every other file, stays as it was.
heads_since_2021 = [e for e, c in zip(engagements, cadres)
                    if c["unit_head"] == "true" and c["start_date"] <= "2021-12-31"]
for e in heads_since_2021[::5]:
    e.update(type="IN_OFFICE", period_end="2022-12-31")
write_csv("audit-engagements.csv", COMMON + ["type", "period_start", "period_end", "report_number",
                                             "audited_post", "report_date", "audited_unit_credit_code"],
          engagements)

CHARACTERISATIONS = {
    "IRREGULAR_FUNDS": ["违规发放津贴补贴", "超标准列支公务接待费", "挤占挪用专项资金", "违规出借财政资金",
                        "虚列支出套取财政资金", "违规收费未纳入预算管理", "超范围支付项目资金",
                        "违规向企业拨付补助资金", "以拨代支虚增支出"],
    "NONCOMPLIANT_MANAGEMENT": ["未按规定履行政府采购程序", "国有资产未入账管理", "合同管理不规范",
                                "内部控制制度不健全", "往来款项长期未清理", "工程项目未按规定招标",
                                "会计核算不规范", "公务用车管理不规范", "非税收入未及时缴库"],
    "LOSS_WASTE": ["项目建成后长期闲置", "资产出租未公开招租致收益流失", "决策失误造成损失",
                   "购置设备闲置未使用", "工程重复建设造成浪费"],
    "NON_MONETARY": ["未落实“三重一大”集体决策制度", "重大经济事项未经集体研究", "违反中央八项规定精神",
                     "经济责任制度落实不到位", "上轮审计发现问题整改不到位"],
    "HARM_TO_PUBLIC": ["截留惠民惠农补贴资金", "违规向群众收取费用", "衔接资金发放不及时",
                       "低保对象审核把关不严", "征地补偿款未足额发放"],
}
PROBLEM_WEIGHTS = [("NONCOMPLIANT_MANAGEMENT", 35), ("IRREGULAR_FUNDS", 30), ("NON_MONETARY", 15),
                   ("LOSS_WASTE", 12), ("HARM_TO_PUBLIC", 8)]


def amount_fen(problem):
    """Amount in fen, log-uniform over a range typical of the problem type (yuan bounds)."""
    ranges = {"IRREGULAR_FUNDS": (5e3, 8e6), "NONCOMPLIANT_MANAGEMENT": (1e4, 3e6),
              "LOSS_WASTE": (1e4, 2e6), "HARM_TO_PUBLIC": (1e3, 5e5)}
    if problem == "NON_MONETARY" or (problem == "NONCOMPLIANT_MANAGEMENT" and rng.random() < 0.4):
        return 0
    lo, hi = ranges[problem]
    yuan = lo * (hi / lo) ** rng.random()
    return int(round(yuan, 2) * 100)


# Spread N_FINDINGS over the engagements unevenly but exactly.
weights = [rng.uniform(0.4, 1.6) for _ in engagements]
counts = [int(N_FINDINGS * w / sum(weights)) for w in weights]
for k in range(N_FINDINGS - sum(counts)):
    counts[k % len(counts)] += 1
assert sum(counts) == N_FINDINGS

findings, rect_seq = [], 0
for e_index, (e, n) in enumerate(zip(engagements, counts), start=1):
    report = day(e["report_date"])
    for k in range(1, n + 1):
        problem = weighted(PROBLEM_WEIGHTS)
        amount = amount_fen(problem)
        if problem in ("IRREGULAR_FUNDS", "HARM_TO_PUBLIC") and amount > 50_000_00 and rng.random() < 0.45:
            transfer = "DISCIPLINE"
        elif problem == "IRREGULAR_FUNDS" and amount > 300_000_00 and rng.random() < 0.3:
            transfer = "JUDICIARY"
        else:
            transfer = weighted([("NONE", 95), ("DISCIPLINE", 2), ("COMPETENT_DEPT", 3)])
        finding_date = report - dt.timedelta(days=rng.randint(5, 75))
        deadline = report + dt.timedelta(days=rng.choice([60, 90, 90, 180]))
        status = weighted([("OPEN", 20), ("IN_PROGRESS", 35), ("DONE", 45)])
        ref = ""
        if status == "DONE":
            rect_seq += 1
            ref = f"吉县审整改〔2025〕{rect_seq}号"
        findings.append({
            "cadre_id_number": e["cadre_id_number"],
            "source_record_id": f"AF-2025-{e_index:04d}-{k:03d}",
            "source_version": "1",
            "classification": "WORK_SECRET" if transfer in ("DISCIPLINE", "JUDICIARY") else "INTERNAL",
            "engagement_source_record_id": e["source_record_id"],
            "problem_type": problem,
            "amount_fen": str(amount),
            "characterisation": rng.choice(CHARACTERISATIONS[problem]),
            "responsibility": weighted([("DIRECT", 40), ("LEADERSHIP", 35), ("SUPERVISORY", 25)]),
            "transfer": transfer,
            "rectification_deadline": deadline.isoformat(),
            "rectification_status": status,
            "rectification_report_ref": ref,
            "finding_date": finding_date.isoformat(),
        })
assert len(findings) == N_FINDINGS
FINDING_HEADER = COMMON + ["engagement_source_record_id", "problem_type", "amount_fen",
                           "characterisation", "responsibility", "transfer", "rectification_deadline",
                           "rectification_status", "rectification_report_ref", "finding_date"]
write_csv("audit-findings.csv", FINDING_HEADER, findings)

# A handful of bad rows between good ones, for the rejected-rows report.
unknown_id = id_number("360828", day("1971-05-09"), 135)
assert unknown_id not in used_ids


def extra_finding(e_index, k, **changes):
    e = engagements[e_index - 1]
    row = {
        "cadre_id_number": e["cadre_id_number"],
        "source_record_id": f"AF-2025-{e_index:04d}-{k:03d}",
        "source_version": "1",
        "classification": "INTERNAL",
        "engagement_source_record_id": e["source_record_id"],
        "problem_type": "NONCOMPLIANT_MANAGEMENT",
        "amount_fen": "1250000",
        "characterisation": "往来款项长期未清理",
        "responsibility": "DIRECT",
        "transfer": "NONE",
        "rectification_deadline": "2025-12-31",
        "rectification_status": "IN_PROGRESS",
        "rectification_report_ref": "",
        "finding_date": "2025-05-20",
    }
    row.update(changes)
    return row


write_csv("bad-findings.csv", FINDING_HEADER, [
    extra_finding(1, 901),                                    # good
    extra_finding(2, 901, amount_fen="-150000"),              # negative amount
    extra_finding(3, 901, problem_type="EMBEZZLEMENT"),       # unknown enum value
    extra_finding(4, 901),                                    # good
    extra_finding(5, 901, cadre_id_number=unknown_id),        # cadre not registered
    extra_finding(6, 901, engagement_source_record_id="AE-2025-9999"),  # no such engagement
    extra_finding(7, 901, finding_date="2025-02-30"),         # not a date
    extra_finding(8, 901, problem_type="IRREGULAR_FUNDS", transfer="DISCIPLINE",
                  classification="WORK_SECRET", amount_fen="8800000"),  # good
])

# --- discipline: sanctions, admonishments, clues ------------------------------


def pick_cadres(n):
    return rng.sample(cadres, n)


sanctions = []
party = [("WARNING", 35), ("SERIOUS_WARNING", 30), ("REMOVAL_FROM_PARTY_POST", 10), ("PROBATION", 15),
         ("EXPULSION", 10)]
state = [("WARNING", 25), ("DEMERIT", 30), ("MAJOR_DEMERIT", 20), ("DEMOTION", 10),
         ("DISMISSAL_FROM_POST", 10), ("EXPULSION_FROM_SERVICE", 5)]
LIGHT = {"WARNING", "SERIOUS_WARNING", "DEMERIT", "MAJOR_DEMERIT"}
for i, c in enumerate(pick_cadres(30), start=1):
    track = "PARTY" if rng.random() < 0.6 else "STATE"
    kind = weighted(party if track == "PARTY" else state)
    decided = rand_date("2023-01-01", "2025-06-30")
    sanctions.append({
        "cadre_id_number": c["id_number"],
        "source_record_id": f"JW-CF-{decided.year}-{i:03d}",
        "source_version": "1",
        "classification": "WORK_SECRET",
        "track": track,
        "party_type": kind if track == "PARTY" else "",
        "state_type": kind if track == "STATE" else "",
        "probation_years": str(rng.choice([1, 2])) if kind == "PROBATION" else "0",
        "decision_number": f"吉县纪{'发' if track == 'PARTY' else '监发'}〔{decided.year}〕{i + 10}号",
        "decision_date": decided.isoformat(),
        "effective_date": (decided + dt.timedelta(days=rng.choice([0, 0, 0, 1, 3]))).isoformat(),
        "form_of_discipline": "2" if kind in LIGHT else "4" if "EXPULSION" in kind else "3",
    })
write_csv("sanctions.csv", COMMON + ["track", "party_type", "state_type", "probation_years",
                                     "decision_number", "decision_date", "effective_date",
                                     "form_of_discipline"], sanctions)

admonishments = []
for i, c in enumerate(pick_cadres(30), start=1):
    kind = weighted([("TALK_REMINDER", 40), ("CRITICISM", 25), ("ORDERED_SELF_REVIEW", 15), ("ADMONITION", 20)])
    date = rand_date("2023-03-01", "2025-08-31")
    admonishments.append({
        "cadre_id_number": c["id_number"],
        "source_record_id": f"JW-JM-{date.year}-{i:03d}",
        "source_version": "1",
        "classification": "INTERNAL",
        "type": kind,
        "date": date.isoformat(),
        "issuer": rng.choice(["中共吉安县纪律检查委员会", "吉安县监察委员会",
                              "县纪委监委派驻第二纪检监察组"]),
    })
write_csv("admonishments.csv", COMMON + ["type", "date", "issuer"], admonishments)

clues = []
CONCLUSIONS = ["谈话函询后说明清楚，予以采信", "反映问题查无实据，予以了结", "反映问题部分属实，已给予批评教育",
               "问题已另案处理，予以了结"]
for i, c in enumerate(pick_cadres(30), start=1):
    disposal = weighted([("REGISTERED", 4), ("TALK_OR_INQUIRY", 9), ("PRELIMINARY_CHECK", 6),
                         ("CASE_OPENED", 3), ("SHELVED", 2), ("CLOSED", 6)])
    if disposal == "CLOSED":
        status = "CONCLUDED"
    elif disposal in ("TALK_OR_INQUIRY", "PRELIMINARY_CHECK"):
        status = weighted([("OPEN", 1), ("CONCLUDED", 1)])
    else:
        status = "OPEN"
    received = rand_date("2024-01-01", "2025-09-30")
    clues.append({
        "cadre_id_number": c["id_number"],
        "source_record_id": f"JW-XS-{received.year}-{i:03d}",
        "source_version": "1",
        "classification": "WORK_SECRET",
        "source": weighted([("PETITION", 10), ("INSPECTION", 5), ("AUDIT", 5), ("ORGANIZATION", 2), ("OTHER", 2)]),
        "source_record": "",
        "disposal": disposal,
        "status": status,
        "conclusion": rng.choice(CONCLUSIONS) if status == "CONCLUDED" else "",
        "received_date": received.isoformat(),
        # 函询 replies are due within 15 working days; about three weeks.
        "reply_due_date": (received + dt.timedelta(days=21)).isoformat()
        if disposal == "TALK_OR_INQUIRY" else "",
    })
write_csv("clues.csv", COMMON + ["source", "source_record", "disposal", "status", "conclusion",
                                 "received_date", "reply_due_date"], clues)

# --- organization: org handling, personal-matters checks, evaluations ---------

org = []
for i, c in enumerate(pick_cadres(20), start=1):
    date = rand_date("2023-01-01", "2025-08-31")
    org.append({
        "cadre_id_number": c["id_number"],
        "source_record_id": f"ZZ-ZZCL-{date.year}-{i:03d}",
        "source_version": "1",
        "classification": "INTERNAL",
        "type": weighted([("SUSPENSION_FOR_REVIEW", 2), ("REASSIGNMENT", 8), ("ORDERED_RESIGNATION", 2),
                          ("REMOVAL_FROM_POST", 4), ("DEMOTION_IN_RANK", 4)]),
        "date": date.isoformat(),
    })
write_csv("org-handling.csv", COMMON + ["type", "date"], org)

checks = []
HANDLING = {"CONSISTENT": [""], "UNDER_REPORTED": ["批评教育", "责令作出书面检查", "谈话提醒"],
            "CONCEALED": ["诫勉", "取消提拔使用资格"]}
for i, c in enumerate(pick_cadres(40), start=1):
    year = rng.choice([2023, 2024])
    result = weighted([("CONSISTENT", 75), ("UNDER_REPORTED", 20), ("CONCEALED", 5)])
    checks.append({
        "cadre_id_number": c["id_number"],
        "source_record_id": f"ZZ-GRSX-{year}-{i:03d}",
        "source_version": "1",
        "classification": "WORK_SECRET",
        "report_year": str(year),
        "result": result,
        "check_date": rand_date(f"{year + 1}-03-01", f"{year + 1}-08-31").isoformat(),
        "handling": rng.choice(HANDLING[result]),
    })
write_csv("personal-matters-checks.csv", COMMON + ["report_year", "result", "check_date", "handling"], checks)

evaluations = []
for i, c in enumerate(pick_cadres(50), start=1):
    year = rng.choice([2023, 2024])
    evaluations.append({
        "cadre_id_number": c["id_number"],
        "source_record_id": f"ZZ-KP-{year}-{i:03d}",
        "source_version": "1",
        "classification": "INTERNAL",
        "year": str(year),
        "kind": weighted([("ANNUAL_REVIEW", 3), ("DEMOCRATIC_ASSESSMENT", 2)]),
        "grade": weighted([("EXCELLENT", 20), ("COMPETENT", 72), ("BASICALLY_COMPETENT", 6), ("INCOMPETENT", 2)]),
    })
write_csv("evaluations.csv", COMMON + ["year", "kind", "grade"], evaluations)

# --- petition: NDJSON with protected informant fields --------------------------

SUMMARIES = ["反映其在工程项目招投标中为亲属企业谋取利益", "反映其违规收受管理服务对象礼金",
             "反映其单位违规发放津贴补贴", "反映其对群众诉求推诿扯皮", "反映其违规操办婚丧喜庆事宜",
             "反映其在征地拆迁中优亲厚友", "反映其公车私用", "反映其插手惠民补贴发放",
             "对其作出的处理决定不服提出申诉", "对其单位作风建设提出批评建议"]
TOWNS = ["敦厚镇", "永阳镇", "天河镇", "横江镇", "固江镇", "万福镇", "永和镇", "桐坪镇", "凤凰镇", "油田镇"]
with open(os.path.join(OUT, "petitions.ndjson"), "w", encoding="utf-8", newline="\n") as f:
    for i, c in enumerate(pick_cadres(30), start=1):
        anonymous = rng.random() < 0.4
        summary = rng.choice(SUMMARIES)
        category = ("APPEAL" if "申诉" in summary else "CRITICISM_SUGGESTION" if "建议" in summary
                    else weighted([("ACCUSATION_DISCIPLINE", 3), ("ACCUSATION_DUTY_CRIME", 1)]))
        status = weighted([("RECEIVED", 2), ("ACCEPTED", 3), ("FORWARDED", 3), ("REJECTED", 1),
                           ("IN_DISPOSAL", 3), ("CLOSED", 3)])
        row = {
            "cadre_id_number": c["id_number"],
            "source_record_id": f"XF-2025-{i:04d}",
            "source_version": 1,
            "classification": "WORK_SECRET",
            "received_date": rand_date("2025-01-02", "2025-10-31").isoformat(),
            "channel": weighted([("LETTER", 3), ("VISIT", 2), ("PHONE", 2), ("ONLINE", 4)]),
            "anonymous": anonymous,
            "category": category,
            "specific": category.startswith("ACCUSATION") and rng.random() < 0.6,
            "status": status,
            "forwarded_to": "吉安县纪委监委信访室" if status == "FORWARDED" else "",
            "summary": summary,
        }
        if not anonymous:
            town = rng.choice(TOWNS)
            row.update({
                "informant_name": rng.choice(SURNAMES) + rng.choice(MALE_GIVEN + FEMALE_GIVEN)
                + rng.choice(MALE_GIVEN + FEMALE_GIVEN),
                "informant_unit": rng.choice([f"吉安县{town}{rng.choice('东西南北')}村村民",
                                              "吉安县某建筑公司职工", "吉安县某中学教师"]),
                "informant_contact": f"139{rng.randint(0, 99999999):08d}",
                "informant_address": f"江西省吉安市吉安县{town}{rng.randint(1, 199)}号",
            })
        f.write(json.dumps(row, ensure_ascii=False) + "\n")

# --- inspection: findings of the county party committee's inspection tours ----------
# Drawn last, so that adding them left every file above unchanged.
#
# There is no example file of ARCHIVE_REVIEW (档案必审): a review names the opinion request it
# serves, one of the organization department's own requests naming the cadre, and a request
# exists only once a running exchange has made it. The README's walk-through writes its review
# after creating the request.

TOURS = [
    # (tour round, first finding date, last finding date, rectification period in days)
    ("十五届县委第六轮巡察", "2025-04-14", "2025-05-30", 90),
    ("十五届县委第八轮巡察", "2025-10-13", "2025-11-28", 180),
]
INSPECTION_SUMMARIES = {
    "POLITICAL": ["贯彻落实上级重大决策部署不到位", "意识形态工作责任制落实不力", "党组议事规则执行不严格"],
    "INTEGRITY": ["违规发放津贴补贴", "公务接待超标准", "工程项目管理存在廉洁风险",
                  "“三重一大”事项未经集体决策", "插手干预惠民补贴发放"],
    "PERSONNEL": ["干部选拔任用程序不规范", "干部人事档案管理不规范", "超职数配备干部"],
    "CONDUCT": ["文山会海问题仍然突出", "为民服务意识不强、办事推诿", "督查检查考核过多过频"],
    "OTHER": ["上轮巡察反馈问题整改不到位", "基层党组织建设薄弱"],
}
inspection_findings = []
for t, (tour, first, last, period) in enumerate(TOURS, start=1):
    for unit in rng.sample(units, 3):
        staff = [c for c in cadres if c["unit_credit_code"] == unit["code"]]
        # The unit head always, reported separately (一把手); a deputy or two beside.
        for c in [staff[0]] + rng.sample(staff[1:], rng.choice([1, 2])):
            # Distinct categories (integrity twice as likely): a tour reports one problem of a
            # kind per person.
            categories = rng.sample(["INTEGRITY", "INTEGRITY", "POLITICAL", "PERSONNEL", "CONDUCT",
                                     "OTHER"], rng.choice([1, 2]))
            for category in dict.fromkeys(categories):
                transfer = ("DISCIPLINE" if category == "INTEGRITY" and rng.random() < 0.7
                            else "ORGANIZATION" if category == "PERSONNEL" and rng.random() < 0.5
                            else "NONE")
                found = rand_date(first, last)
                status = weighted([("OPEN", 2), ("IN_PROGRESS", 3), ("DONE", 3)])
                n = len(inspection_findings) + 1
                inspection_findings.append({
                    "cadre_id_number": c["id_number"],
                    "source_record_id": f"XC-{found.year}-{t:02d}-{n:03d}",
                    "source_version": "1",
                    "classification": "WORK_SECRET" if transfer == "DISCIPLINE" else "INTERNAL",
                    "tour_round": tour,
                    "unit_name": c["unit_name"],
                    "unit_credit_code": c["unit_credit_code"],
                    "concerns_unit_head": c["unit_head"],
                    "category": category,
                    "summary": rng.choice(INSPECTION_SUMMARIES[category]),
                    "transfer": transfer,
                    "rectification_deadline": (found + dt.timedelta(days=period)).isoformat(),
                    "rectification_status": status,
                    "rectification_report_ref": f"吉县巡整改〔{found.year}〕{n}号" if status == "DONE" else "",
                    "finding_date": found.isoformat(),
                })
write_csv("inspection-findings.csv", COMMON + ["tour_round", "unit_name", "unit_credit_code",
                                               "concerns_unit_head", "category", "summary", "transfer",
                                               "rectification_deadline", "rectification_status",
                                               "rectification_report_ref", "finding_date"],
          inspection_findings)

print(f"wrote example import files to {OUT}")
