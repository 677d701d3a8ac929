use crate::error::Error;

use super::print;

/// `init`: the shell file for `eval` (or `| source`), less the part that
/// re-sources the file by its absolute path: eval'd text is no file, and
/// the file it names would be the caller's.
pub fn init(shell: &str) -> Result<(), Error> {
    let text = match shell {
        "bash" => include_str!("../../shell/distcc.sh"),
        "zsh" => include_str!("../../shell/distcc.zsh"),
        _ => include_str!("../../shell/distcc.fish"),
    };
    print(&without_resourcing(text))
}

/// `text` without its lines from `# Sourced by a relative path` to the
/// `fi` that ends that block (and the blank line after it).
fn without_resourcing(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    let mut after_fi = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with("# Sourced by a relative path") {
            skipping = true;
        }
        if skipping {
            skipping = line.trim_end() != "fi";
            after_fi = !skipping;
            continue;
        }
        if std::mem::take(&mut after_fi) && line.trim().is_empty() {
            continue;
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_leaves_out_the_re_sourcing() {
        for file in [
            include_str!("../../shell/distcc.sh"),
            include_str!("../../shell/distcc.zsh"),
        ] {
            assert!(file.contains("# Sourced by a relative path"));
            let text = super::without_resourcing(file);
            assert!(!text.contains("Sourced by a relative path"), "{text}");
            assert!(!text.contains("builtin source"), "{text}");
            assert!(text.contains("distcc_build() {"));
            assert_eq!(text.lines().count(), file.lines().count() - 7);
        }
        let fish = include_str!("../../shell/distcc.fish");
        assert_eq!(super::without_resourcing(fish), fish);
    }
}
