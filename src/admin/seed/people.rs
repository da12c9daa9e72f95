//! The fictitious people of a seeded store: provinces with real division codes, names, valid 公民身份号码 and credit codes, and cadres as an organization department would register them.

use std::collections::HashSet;

use crate::domain::ids;
use crate::proto;
use crate::rng::Rng;

/// A fixed "today" for every seeded date, so the same seed gives the same data
/// whatever day it runs. Opinion due dates are the exception: OVERDUE is
/// computed against the real date, so they are set relative to it.
const ANCHOR: (i32, u8, u8) = (2026, 6, 30);

/// (code, name, counties as (code, name)).
type Prefecture = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// One province of the synthetic data: its code and name, its prefectures with
/// their counties (real GB/T 2260 codes), and its share of the cadres.
pub struct Province {
    pub code: &'static str,
    name: &'static str,
    prefectures: &'static [Prefecture],
    weight: f64,
}

/// Jiangxi comes first and holds most cadres: the development PKI's clients
/// are Jiangxi systems (360000, 360802, 360821), so benchmarks read these.
pub const PROVINCES: &[Province] = &[
    Province {
        code: "360000",
        name: "江西省",
        prefectures: &[
            (
                "360100",
                "南昌市",
                &[("360102", "东湖区"), ("360111", "青山湖区")],
            ),
            (
                "360800",
                "吉安市",
                &[
                    ("360802", "吉州区"),
                    ("360821", "吉安县"),
                    ("360822", "吉水县"),
                ],
            ),
            (
                "360700",
                "赣州市",
                &[("360702", "章贡区"), ("360703", "南康区")],
            ),
        ],
        weight: 0.55,
    },
    Province {
        code: "330000",
        name: "浙江省",
        prefectures: &[
            (
                "330100",
                "杭州市",
                &[("330102", "上城区"), ("330106", "西湖区")],
            ),
            ("330200", "宁波市", &[("330203", "海曙区")]),
        ],
        weight: 0.15,
    },
    Province {
        code: "440000",
        name: "广东省",
        prefectures: &[
            (
                "440100",
                "广州市",
                &[("440103", "荔湾区"), ("440104", "越秀区")],
            ),
            (
                "440300",
                "深圳市",
                &[("440303", "罗湖区"), ("440304", "福田区")],
            ),
        ],
        weight: 0.15,
    },
    Province {
        code: "510000",
        name: "四川省",
        prefectures: &[
            (
                "510100",
                "成都市",
                &[("510104", "锦江区"), ("510105", "青羊区")],
            ),
            ("510700", "绵阳市", &[("510703", "涪城区")]),
        ],
        weight: 0.15,
    },
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "欧阳", "司马",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "文", "华", "建", "国", "志", "红", "林", "海", "云", "斌",
    "辉", "鹏", "宇", "浩", "凯", "晨", "玲", "卫", "东", "春", "荣", "新", "永", "德", "俊", "清",
];
pub(super) const DEPARTMENTS: &[&str] = &[
    "财政局",
    "发展和改革委员会",
    "交通运输局",
    "自然资源局",
    "住房和城乡建设局",
    "教育局",
    "卫生健康委员会",
    "农业农村局",
    "水利局",
    "市场监督管理局",
    "人力资源和社会保障局",
    "生态环境局",
];
/// (title, rank suffix, is the unit head)
const TITLES: &[(&str, bool)] = &[
    ("局长", true),
    ("党组书记", true),
    ("主任", true),
    ("副局长", false),
    ("副主任", false),
    ("党组成员", false),
];
const CREDIT_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

fn anchor() -> time::Date {
    let (y, m, d) = ANCHOR;
    time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap_or(time::Month::June), d)
        .unwrap_or(time::Date::MIN)
}

pub(super) fn days_before_anchor(days: usize) -> time::Date {
    anchor() - time::Duration::days(days as i64)
}

fn id_number(rng: &mut Rng, county: &str, male: bool, used: &mut HashSet<String>) -> String {
    loop {
        let birth = time::Date::from_calendar_date(1960, time::Month::January, 1)
            .unwrap_or(time::Date::MIN)
            + time::Duration::days(rng.below(26 * 365) as i64);
        let mut seq = rng.below(500) as u32 * 2;
        if male {
            seq += 1;
        }
        let first17 = format!(
            "{county}{:04}{:02}{:02}{seq:03}",
            birth.year(),
            birth.month() as u8,
            birth.day()
        );
        let check = ids::id_number_check_char(first17.as_bytes()) as char;
        let n = format!("{first17}{check}");
        if used.insert(n.clone()) {
            return n;
        }
    }
}

fn credit_code(rng: &mut Rng, division: &str) -> String {
    // 11 = 机关 (a state organ), then the registering division and a 9-character body code.
    let mut s = format!("11{division}");
    for _ in 0..9 {
        s.push(*rng.pick(CREDIT_ALPHABET) as char);
    }
    let check = ids::credit_code_check_char(s.as_bytes()).unwrap_or(b'0') as char;
    s.push(check);
    s
}

pub(super) fn name(rng: &mut Rng) -> String {
    let mut n = rng.pick(SURNAMES).to_string();
    n.push_str(GIVEN[rng.below(GIVEN.len())]);
    if rng.chance(0.7) {
        n.push_str(GIVEN[rng.below(GIVEN.len())]);
    }
    n
}

/// One fictitious cadre: the province they fall under (an index into
/// [`PROVINCES`]), the id the seeded row gets, and the cadre as an
/// organization department would submit it to CreateCadre.
#[derive(Clone, Debug)]
pub struct Person {
    pub province: usize,
    pub id: String,
    pub cadre: proto::Cadre,
}

/// The next fictitious cadre; `used` holds the 公民身份号码 given so far,
/// which are never given twice.
pub fn person(rng: &mut Rng, used: &mut HashSet<String>) -> Person {
    let pi = {
        let u = rng.unit();
        let mut acc = 0.0;
        PROVINCES
            .iter()
            .position(|p| {
                acc += p.weight;
                u < acc
            })
            .unwrap_or(0)
    };
    let prov = &PROVINCES[pi];
    let (pref_code, pref_name, counties) = *rng.pick(prov.prefectures);
    let (county_code, county_name) = *rng.pick(counties);
    let (managing, place) = match rng.below(10) {
        0 => (prov.code, prov.name.to_string()),
        1..=3 => (pref_code, pref_name.to_string()),
        _ => (county_code, format!("{pref_name}{county_name}")),
    };
    let male = rng.chance(0.78);
    let (_, _, home) = *rng.pick(prov.prefectures);
    let birthplace = rng.pick(home).0;
    let number = id_number(rng, birthplace, male, used);
    let mut posts = Vec::new();
    let n_posts = 1 + usize::from(rng.chance(0.35));
    for k in 0..n_posts {
        let (title, head) = *rng.pick(TITLES);
        let dept = rng.pick(DEPARTMENTS);
        let start = days_before_anchor(400 + rng.below(3000) + k * 1500);
        let end = if k > 0 {
            (start + time::Duration::days(700 + rng.below(700) as i64)).to_string()
        } else {
            String::new()
        };
        posts.push(proto::Post {
            unit_name: format!("{place}{dept}"),
            unit_credit_code: credit_code(rng, managing),
            title: title.to_string(),
            rank: match managing {
                m if m == prov.code => "正厅级",
                m if m == pref_code => "正处级",
                _ => "正科级",
            }
            .to_string(),
            unit_head: head,
            start_date: start.to_string(),
            end_date: end,
        });
    }
    let id = rng.id();
    Person {
        province: pi,
        id,
        cadre: proto::Cadre {
            id_number: number,
            display_name: name(rng),
            gender: if male {
                proto::Gender::Male as i32
            } else {
                proto::Gender::Female as i32
            },
            managing_division: managing.to_string(),
            posts,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identifiers_are_valid_and_reproducible() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let mut used = HashSet::new();
        for _ in 0..200 {
            let n = id_number(&mut a, "360821", true, &mut used);
            assert!(ids::is_valid_id_number(&n), "{n}");
            assert_eq!((n.as_bytes()[16] - b'0') % 2, 1, "male sequence is odd");
            let c = credit_code(&mut a, "360821");
            assert!(ids::is_valid_credit_code(&c), "{c}");
        }
        let mut used = HashSet::new();
        let mut again = Vec::new();
        for _ in 0..200 {
            again.push(id_number(&mut b, "360821", true, &mut used));
            credit_code(&mut b, "360821");
        }
        let mut a = Rng::new(7);
        let mut used = HashSet::new();
        let first: Vec<String> = (0..200)
            .map(|_| {
                let n = id_number(&mut a, "360821", true, &mut used);
                credit_code(&mut a, "360821");
                n
            })
            .collect();
        assert_eq!(first, again);
    }
}
