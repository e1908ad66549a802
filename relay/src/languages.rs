//! Human names of languages, in the language itself (what a listener looks for on the picker).

use crate::ids::Language;

const NAMES: &[(&str, &str)] = &[
    ("ar", "العربية"),
    ("bg", "Български"),
    ("ca", "Català"),
    ("cs", "Čeština"),
    ("da", "Dansk"),
    ("de", "Deutsch"),
    ("el", "Ελληνικά"),
    ("en", "English"),
    ("es", "Español"),
    ("et", "Eesti"),
    ("eu", "Euskara"),
    ("fa", "فارسی"),
    ("fi", "Suomi"),
    ("fr", "Français"),
    ("ga", "Gaeilge"),
    ("he", "עברית"),
    ("hi", "हिन्दी"),
    ("hr", "Hrvatski"),
    ("hu", "Magyar"),
    ("id", "Bahasa Indonesia"),
    ("is", "Íslenska"),
    ("it", "Italiano"),
    ("ja", "日本語"),
    ("ko", "한국어"),
    ("lt", "Lietuvių"),
    ("lv", "Latviešu"),
    ("mt", "Malti"),
    ("nb", "Norsk bokmål"),
    ("nl", "Nederlands"),
    ("no", "Norsk"),
    ("pl", "Polski"),
    ("pt", "Português"),
    ("ro", "Română"),
    ("ru", "Русский"),
    ("sk", "Slovenčina"),
    ("sl", "Slovenščina"),
    ("sq", "Shqip"),
    ("sr", "Српски"),
    ("sv", "Svenska"),
    ("sw", "Kiswahili"),
    ("th", "ไทย"),
    ("tr", "Türkçe"),
    ("uk", "Українська"),
    ("vi", "Tiếng Việt"),
    ("zh", "中文"),
];

/// Every language the table names: (code, name).
pub(crate) fn all() -> impl Iterator<Item = (&'static str, &'static str)> {
    NAMES.iter().copied()
}

/// The table as an ES module for the pages (served as `/static/languages.js`), so that it exists
/// only here: `export const LANGUAGES = [{ code: "ar", label: "العربية" }, …];`.
pub(crate) fn es_module() -> String {
    let mut js = String::from(
        "// The languages Tolk names, made by the relay from its own table (relay/src/languages.rs).\n\
         export const LANGUAGES = [\n",
    );
    for (code, label) in all() {
        // JSON string literals are JavaScript string literals.
        let (code, label) = (serde_json::Value::from(code), serde_json::Value::from(label));
        js.push_str(&format!("  {{ code: {code}, label: {label} }},\n"));
    }
    js.push_str("];\n");
    js
}

/// "Français", "Português (BR)", or the tag itself when the language is not in the table.
pub(crate) fn label(language: &Language) -> String {
    let tag = language.as_str();
    let (primary, rest) = tag.split_once('-').unwrap_or((tag, ""));
    match NAMES.binary_search_by(|(code, _)| code.cmp(&primary)) {
        Ok(i) if rest.is_empty() => NAMES[i].1.to_owned(),
        Ok(i) => format!("{} ({rest})", NAMES[i].1),
        Err(_) => tag.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_and_found() {
        assert!(NAMES.windows(2).all(|w| w[0].0 < w[1].0), "binary search needs a sorted table");
        let l = |s| Language::parse(s).expect("valid");
        assert_eq!(label(&l("fr")), "Français");
        assert_eq!(label(&l("pt-BR")), "Português (BR)");
        assert_eq!(label(&l("tlh")), "tlh");
    }

    #[test]
    fn the_pages_get_the_whole_table() {
        let js = es_module();
        assert!(js.contains("export const LANGUAGES = ["));
        assert!(js.contains(r#"{ code: "fr", label: "Français" },"#));
        assert_eq!(js.matches("{ code: ").count(), NAMES.len());
    }
}
