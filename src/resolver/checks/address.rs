//! Addresses as the real-estate registry and the police spell them, reduced to one
//! canonical form so two spellings of the same flat compare equal.

/// Reduces an address to a canonical form, so the registry's and the police's spelling of
/// the same flat compare equal: whitespace removed, full-width digits, letters and
/// punctuation made ASCII, letters uppercased, traditional 號/棟/樓 simplified, numbers in
/// Chinese numerals made digits (八十八号 → 88号), building words (号楼, 幢, #楼) made 栋,
/// 单元 made a dash (2单元501 → 2-501), dashes unified, the province and city before the
/// district dropped (北京市朝阳区… → 朝阳区…), and a room suffix (室, 号, 房) after the
/// room number dropped. Both sides go through the same function, so a rule that is too
/// generous can only make two spellings of one address equal, never split one.
pub fn normalise_address(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    for c in address.chars() {
        let c = match c {
            // Full-width ASCII variants sit at a fixed offset from ASCII.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            '號' => '号',
            '棟' => '栋',
            '樓' => '楼',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            c => c,
        };
        // Covers the ideographic space U+3000 too.
        if c.is_whitespace() {
            continue;
        }
        out.push(c.to_ascii_uppercase());
    }
    let out = arabic_numerals(&out)
        .replace("号楼", "栋")
        .replace("#楼", "栋")
        .replace('幢', "栋")
        .replace("单元", "-");
    let mut out = without_province_and_city(&out).to_owned();
    for suffix in ['室', '号', '房'] {
        if let Some(rest) = out.strip_suffix(suffix)
            && rest.ends_with(|c: char| c.is_ascii_alphanumeric())
        {
            out.truncate(rest.len());
            break;
        }
    }
    out
}

/// `text` with every run of Chinese numerals (一 to 九, 零, 十, 百, 千) written in digits:
/// 八十八 → 88, 一百零二 → 102, 二〇二六 → 2026.
fn arabic_numerals(text: &str) -> String {
    let digit = |c: char| "零〇一二三四五六七八九".find(c).map(|i| i / 3);
    let digit = |c: char| match digit(c) {
        Some(0 | 1) => Some(0),
        Some(i) => Some(i as u32 - 1),
        None => None,
    };
    let unit = |c: char| match c {
        '十' => Some(10),
        '百' => Some(100),
        '千' => Some(1000),
        _ => None,
    };
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..]
            .iter()
            .take_while(|c| digit(**c).is_some() || unit(**c).is_some())
            .count();
        if run == 0 {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let numerals = &chars[i..i + run];
        if numerals.iter().any(|c| unit(*c).is_some()) {
            // Positional with units: 八十八, 一百零二, 十五.
            let (mut total, mut pending) = (0u32, None::<u32>);
            for &c in numerals {
                match (digit(c), unit(c)) {
                    (Some(d), _) => pending = Some(d),
                    (_, Some(u)) => {
                        total += pending.unwrap_or(1) * u;
                        pending = None;
                    }
                    _ => {}
                }
            }
            out.push_str(&(total + pending.unwrap_or(0)).to_string());
        } else {
            // Digit by digit: 二〇二六.
            numerals
                .iter()
                .filter_map(|c| digit(*c))
                .for_each(|d| out.push(char::from_digit(d, 10).unwrap_or('0')));
        }
        i += run;
    }
    out
}

/// `address` without the province and city written before the district: 北京市朝阳区… and
/// 朝阳区… are one address. Only a leading segment ending in 省, 自治区 or 市 and naming no
/// district, road or street is dropped, and only while a district or county follows.
fn without_province_and_city(address: &str) -> &str {
    let mut rest = address;
    loop {
        let cut = ["省", "自治区", "市"]
            .iter()
            .filter_map(|end| rest.find(end).map(|at| at + end.len()))
            .min();
        let Some(cut) = cut else { return rest };
        let (segment, after) = rest.split_at(cut);
        let names_a_place_inside = ["区", "县", "路", "街", "道", "号"]
            .iter()
            .any(|w| segment[..segment.len() - 3].contains(w));
        let district_follows = after.contains('区') || after.contains('县');
        if names_a_place_inside || !district_follows || segment.chars().count() > 12 {
            return rest;
        }
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_address_removes_whitespace_and_full_width_forms() {
        assert_eq!(
            normalise_address(" 北京市\t朝阳区　建国路 88 号 "),
            normalise_address("北京市朝阳区建国路88号")
        );
        assert_eq!(normalise_address("建国路８８号Ａ座"), "建国路88号A座");
        assert_eq!(normalise_address("ａｂｃ１２３"), "ABC123");
        assert_eq!(normalise_address("3－2—501"), "3-2-501");
    }

    #[test]
    fn normalise_address_unifies_building_and_room_words() {
        let canonical = "朝阳区建国路88号3栋2-501";
        for spelling in [
            "北京市朝阳区建国路88号3号楼2单元501室",
            "北京市朝阳区建国路88号3幢2单元501号",
            "北京市朝阳区建国路88號3棟2单元501房",
            "北京市朝阳区建国路88号3#楼2单元501",
            "北京市朝阳区建国路８８号３号楼２单元５０１室",
        ] {
            assert_eq!(normalise_address(spelling), canonical, "{spelling}");
        }
        // Different rooms, buildings and roads stay different.
        assert_ne!(
            normalise_address("北京市朝阳区建国路88号3号楼2单元502室"),
            canonical
        );
        assert_ne!(
            normalise_address("北京市朝阳区建国路88号4号楼2单元501室"),
            canonical
        );
        // A 号 that is not a room suffix is kept.
        assert_eq!(normalise_address("建国路88号院"), "建国路88号院");
        // The spellings the police and the registry both use.
        for (a, b) in [
            ("北京市朝阳区建国路88号", "朝阳区建国路88号"),
            ("朝阳区建国路88号3栋2单元501", "朝阳区建国路88号3栋2-501"),
            ("朝阳区建国路八十八号", "朝阳区建国路88号"),
            ("朝阳区建国路一百零二号", "朝阳区建国路102号"),
            ("广东省深圳市南山区科技园路1号", "南山区科技园路1号"),
        ] {
            assert_eq!(normalise_address(a), normalise_address(b), "{a} / {b}");
        }
        // A city or district named inside the street stays: only a leading one goes.
        assert_ne!(
            normalise_address("朝阳区市场街1号"),
            normalise_address("朝阳区1号")
        );
        assert_ne!(
            normalise_address("海淀区建国路88号"),
            normalise_address("朝阳区建国路88号")
        );
        // A suffix goes only after a room number.
        assert_eq!(normalise_address("会议室"), "会议室");
    }
}
