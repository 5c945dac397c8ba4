//! Masking rules, as pure functions over text.
//!
//! They follow the usual conventions of Chinese public services, so that a clerk at
//! a window reads a masked value the way they read one on any other government
//! screen:
//!
//! - resident ID: the first 6 characters (issuing region) and the last 4, with an
//!   asterisk for each character between: `110101********123X`;
//! - name: the first character, then one asterisk per remaining character: `张*`,
//!   `欧***` for `欧阳娜娜`; separators (space, `·`, `-`) stay so that `阿依古丽·买买提`
//!   reads `阿***·***` and `John Smith` reads `J*** *****`;
//! - address: cut to the district (see [`address`]);
//! - phone: `138****5678` for a mobile number, else everything but the last 4 digits.
//!
//! Masks keep the length of IDs, names and phones: the layout is what people
//! recognise, and the length of a name is not what identifies someone.

/// What a value that cannot be masked meaningfully becomes (no length leaks).
const OPAQUE: &str = "***";

/// Masks a resident ID number: the first 6 and the last 4 characters stay.
///
/// Works on characters, not on a parsed ID, because stored records may hold the
/// old 15-digit numbers; a value of 10 characters or fewer becomes `***` entirely,
/// since 6 + 4 kept characters would be all of it.
pub fn resident_id(id: &str) -> String {
    let chars: Vec<char> = id.trim().chars().collect();
    if chars.len() <= 10 {
        return OPAQUE.to_owned();
    }
    let middle = chars.len() - 10;
    chars[..6]
        .iter()
        .chain(std::iter::repeat_n(&'*', middle))
        .chain(&chars[chars.len() - 4..])
        .collect()
}

/// Shortest run of digits [`resident_ids_in`] masks: the old 15-digit resident ID.
const MIN_ID_DIGITS: usize = 15;

/// Masks every resident ID number inside free text such as a record id or a message key
/// (`identity/11010519800312001X` → `identity/110105********001X`): every run of 15 or
/// more digits, with a check character `X` right after it, is masked as [`resident_id`]
/// masks an ID. Shorter numbers stay: dates, sequence numbers, unit numbers (at most 12
/// digits in a row) are no one's identifier.
pub fn resident_ids_in(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut masked = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let digits = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits < MIN_ID_DIGITS {
            // Not an ID: the digits (or the one other character) as they are.
            let end = i + digits.max(1);
            masked.extend(&chars[i..end]);
            i = end;
            continue;
        }
        let mut end = i + digits;
        if matches!(chars.get(end), Some('X' | 'x')) {
            end += 1;
        }
        masked.push_str(&resident_id(&chars[i..end].iter().collect::<String>()));
        i = end;
    }
    masked
}

/// Whether a character separates parts of a name (kept by [`name`]).
fn is_name_separator(c: char) -> bool {
    matches!(c, ' ' | '·' | '•' | '・' | '-' | '.')
}

/// Masks a personal name: the first character stays, every later character but a
/// separator becomes `*`.
pub fn name(name: &str) -> String {
    let mut chars = name.trim().chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    std::iter::once(first)
        .chain(chars.map(|c| if is_name_separator(c) { c } else { '*' }))
        .collect()
}

/// Administrative-unit suffixes above the district, longest first where one is the
/// end of another.
const ABOVE_DISTRICT: [&str; 6] = ["特别行政区", "自治区", "自治州", "地区", "省", "盟"];

/// County-level (district) suffixes.
const DISTRICT: [&str; 3] = ["区", "县", "旗"];

/// Words that begin below the district: a street, a town, a compound, a number. When
/// one of them is met before a district suffix, the address has no district and is
/// cut before the unit that contains it.
const BELOW_DISTRICT: [&str; 18] = [
    "小区", "社区", "园区", "校区", "景区", "街区", "街道", "大道", "胡同", "镇", "乡", "村", "路",
    "街", "巷", "弄", "号", "栋",
];

/// Cuts an address to the district.
///
/// The address is read as a sequence of administrative units, each a non-empty name
/// followed by a suffix:
///
/// 1. a district-level suffix — `区`, `县`, `旗` (also in `自治县`, `自治旗`, `林区`,
///    `新区`) — ends the kept part: `北京市朝阳区建国路88号` → `北京市朝阳区`;
/// 2. `市` is prefecture level the first time and county level (a county-level city)
///    when a prefecture (`市`, `地区`, `自治州`, `盟`) came before it:
///    `江苏省苏州市昆山市玉山镇` → `江苏省苏州市昆山市`;
/// 3. province and prefecture suffixes (`省`, `自治区`, `特别行政区`, `地区`, `自治州`,
///    `盟`) are kept and reading goes on, so `自治区` and `地区` never count as a district;
/// 4. a suffix or street word right at the start of a unit is part of its name
///    (`济南市市中区` → `山东省济南市市中区`, `江苏省镇江市京口区` stays whole), and a
///    district suffix directly followed by a street word is a street name
///    (`长春市红旗街` is not a banner);
/// 5. a word below the district (`路`, `街`, `镇`, `小区`, `号`, …) met first means the
///    district is missing: the address is cut after the last unit read
///    (`北京市建国路88号` → `北京市`), or becomes `***` when there is none.
///
/// An address with no recognisable unit at all (e.g. in Latin script) becomes `***`:
/// when unsure, show less.
pub fn address(address: &str) -> String {
    let address = address.trim();
    // Byte offset where the last complete administrative unit ends.
    let mut kept = 0;
    let mut seen_prefecture = false;
    let mut rest = address;
    let mut at = 0;
    while let Some(c) = rest.chars().next() {
        // Suffixes and street words only count after a non-empty name: at the start
        // of a unit they begin its name (`镇江市`, `乡宁县`, `市中区`).
        if at != kept {
            if BELOW_DISTRICT.iter().any(|w| rest.starts_with(w)) {
                break;
            }
            if let Some(suffix) = ABOVE_DISTRICT.iter().find(|s| rest.starts_with(**s)) {
                at += suffix.len();
                kept = at;
                // Provinces come before prefectures; a 市 after them is still a prefecture.
                seen_prefecture |= !matches!(*suffix, "省" | "自治区" | "特别行政区");
                rest = &address[at..];
                continue;
            }
            if rest.starts_with('市') {
                at += '市'.len_utf8();
                if seen_prefecture {
                    return address[..at].to_owned();
                }
                kept = at;
                seen_prefecture = true;
                rest = &address[at..];
                continue;
            }
            if let Some(suffix) = DISTRICT.iter().find(|s| rest.starts_with(**s)) {
                let end = at + suffix.len();
                let after = &address[end..];
                let street_name = ["路", "街", "道", "巷", "村"]
                    .iter()
                    .any(|w| after.starts_with(w));
                if !street_name {
                    return address[..end].to_owned();
                }
            }
        }
        at += c.len_utf8();
        rest = &address[at..];
    }
    if kept == 0 {
        OPAQUE.to_owned()
    } else {
        address[..kept].to_owned()
    }
}

/// Masks a phone number: an 11-digit mobile number keeps its first 3 and last 4
/// digits (`138****5678`); any other number keeps its last 4 digits and its
/// separators (`***-****5678`). Fewer than 7 digits become `***`.
pub fn phone(phone: &str) -> String {
    let phone = phone.trim();
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    if digits < 7 {
        return OPAQUE.to_owned();
    }
    let mobile = digits == 11 && phone.len() == 11 && phone.starts_with('1');
    let mut seen = 0;
    phone
        .chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            let keep = seen > digits - 4 || (mobile && seen <= 3);
            if keep { c } else { '*' }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_ids_inside_text_are_masked() {
        assert_eq!(
            resident_ids_in("public-security/identity/11010519800312001X"),
            "public-security/identity/110105********001X"
        );
        assert_eq!(
            resident_ids_in("social-security/contribution/310104199005210021-2024-01"),
            "social-security/contribution/310104********0021-2024-01"
        );
        // The old 15-digit form, and a lowercase check character.
        assert_eq!(
            resident_ids_in("p/x/110105800312001"),
            "p/x/110105*****2001"
        );
        assert_eq!(resident_ids_in("11010519800312001x"), "110105********001x");
        // Shorter numbers, unit numbers and uuids stay as they are.
        for text in [
            "housing/property_title/110105001002GB00017F00030201",
            "public-security/household_registration/h-2024-000123",
            "6f1c2d3e-4a5b-4c6d-8e7f-901234567890",
            "张三-X",
            "",
        ] {
            assert_eq!(resident_ids_in(text), text);
        }
    }

    #[test]
    fn resident_ids_keep_region_and_last_four() {
        assert_eq!(resident_id("11010119900307123X"), "110101********123X");
        assert_eq!(resident_id("110105194912310029"), "110105********0029");
        assert_eq!(resident_id(" 11010119900307123X "), "110101********123X");
        // Old 15-digit numbers: 5 hidden characters.
        assert_eq!(resident_id("110105491231002"), "110105*****1002");
        assert_eq!(resident_id("1101051234"), "***");
        assert_eq!(resident_id(""), "***");
    }

    #[test]
    fn names_keep_the_first_character() {
        assert_eq!(name("张三"), "张*");
        assert_eq!(name("张"), "张");
        assert_eq!(name("欧阳娜娜"), "欧***");
        assert_eq!(name("阿依古丽·买买提"), "阿***·***");
        assert_eq!(name("John Smith"), "J*** *****");
        assert_eq!(name("Jean-Luc"), "J***-***");
        assert_eq!(name("  李四 "), "李*");
        assert_eq!(name(""), "");
    }

    #[test]
    fn addresses_are_cut_after_the_district() {
        let cases = [
            ("北京市朝阳区建国路88号", "北京市朝阳区"),
            ("上海市浦东新区张江镇科苑路1号", "上海市浦东新区"),
            ("浙江省杭州市西湖区文三路100号3幢", "浙江省杭州市西湖区"),
            ("江苏省苏州市昆山市玉山镇人民路1号", "江苏省苏州市昆山市"),
            (
                "广西壮族自治区南宁市青秀区民族大道100号",
                "广西壮族自治区南宁市青秀区",
            ),
            (
                "新疆维吾尔自治区阿克苏地区阿克苏市解放路1号",
                "新疆维吾尔自治区阿克苏地区阿克苏市",
            ),
            (
                "内蒙古自治区呼伦贝尔市鄂温克族自治旗巴彦托海镇",
                "内蒙古自治区呼伦贝尔市鄂温克族自治旗",
            ),
            (
                "云南省大理白族自治州宾川县金牛镇",
                "云南省大理白族自治州宾川县",
            ),
            ("湖北省神农架林区松柏镇", "湖北省神农架林区"),
            ("山东省济南市市中区经四路1号", "山东省济南市市中区"),
            ("江苏省镇江市京口区正东路1号", "江苏省镇江市京口区"),
            ("山西省临汾市乡宁县昌宁镇", "山西省临汾市乡宁县"),
            ("香港特别行政区中西区皇后大道中1号", "香港特别行政区中西区"),
            // No district: cut after the last unit read.
            ("北京市建国路88号", "北京市"),
            ("吉林省长春市红旗街100号", "吉林省长春市"),
            ("浙江省杭州市幸福小区3栋", "浙江省杭州市"),
            // Nothing recognisable: show nothing.
            ("建国路88号", "***"),
            ("12 Baker Street, London", "***"),
            ("", "***"),
            // Already at the district.
            ("北京市朝阳区", "北京市朝阳区"),
            ("浙江省杭州市", "浙江省杭州市"),
        ];
        for (full, cut) in cases {
            assert_eq!(address(full), cut, "address {full}");
        }
    }

    #[test]
    fn phones_keep_the_last_four_digits() {
        assert_eq!(phone("13812345678"), "138****5678");
        assert_eq!(phone("010-12345678"), "***-****5678");
        assert_eq!(phone("+86 13812345678"), "+** *******5678");
        assert_eq!(phone("12345"), "***");
    }
}
