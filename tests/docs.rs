//! The docs say what the code does: every variable of `config::vars` is in
//! the README's table and the man page's ENVIRONMENT with the same
//! default, and no other `DISTCC_AUTO_*` variable is documented there as
//! settable; every long option of `--help` is offered by each completion.

use std::path::Path;

use distcc_auto::config::vars::ALL;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// Names that we set for the shell, not the user.
const OURS: [&str; 10] = [
    "DISTCC_AUTO_JOBS",
    "DISTCC_AUTO_DISTCC_DIR",
    "DISTCC_AUTO_MAKEFLAGS",
    "DISTCC_AUTO_JOBSERVER_FIFO",
    "DISTCC_AUTO_SHELL_PID",
    "DISTCC_AUTO_TUNNEL_PIDS",
    "DISTCC_AUTO_TUNNEL_IDS",
    "DISTCC_AUTO_COUNTERS",
    "DISTCC_AUTO_CCACHE_PREFIX",
    "DISTCC_AUTO_",
];

fn words_in(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("DISTCC_AUTO_") && !OURS.contains(w))
        .map(String::from)
        .collect()
}

#[test]
fn readme_table_has_every_variable_with_its_default() {
    let readme = read("README.md");
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `DISTCC_AUTO_"))
        .collect();
    for v in ALL {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `{}` |", v.name)))
            .unwrap_or_else(|| panic!("README: no row for {}", v.name));
        let last = row.trim_end_matches('|').rsplit('|').next().unwrap();
        let last = last.trim().replace('`', "");
        match v.default {
            None => assert_eq!(last, "required", "{}", v.name),
            Some(d) => assert!(
                last == d || last.ends_with(&format!(" {d}")),
                "README: {} default '{last}', the code's is '{d}'",
                v.name
            ),
        }
    }
    let mut named: Vec<String> = rows.iter().flat_map(|r| words_in(r)).collect();
    named.dedup();
    for n in named {
        assert!(
            ALL.iter().any(|v| v.name == n),
            "README documents {n}, which the code does not read"
        );
    }
}

#[test]
fn man_page_has_every_variable_with_its_default() {
    let man = read("man/distcc-auto.1");
    let env = man.split(".Sh ENVIRONMENT").nth(1).unwrap();
    let env = env.split("\n.Sh ").next().unwrap();
    for v in ALL {
        let at = env
            .find(&format!(".It Ev {}\n", v.name))
            .unwrap_or_else(|| panic!("man: no entry for {}", v.name));
        let entry = &env[at..];
        let entry = &entry[..entry[4..].find("\n.It ").map_or(entry.len(), |e| e + 4)];
        if let Some(d) = v.default {
            let text = entry
                .replace(".Ql ", "")
                .replace(".Dq ", "")
                .replace('\n', " ");
            assert!(
                text.to_lowercase().contains("default")
                    && text
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                        .any(|w| w.trim_end_matches('.') == d),
                "man: {} does not give its default {d}: {entry}",
                v.name
            );
        }
    }
    let items: Vec<String> = env
        .lines()
        .filter(|l| l.starts_with(".It Ev "))
        .flat_map(words_in)
        .collect();
    for n in items {
        assert!(
            ALL.iter().any(|v| v.name == n),
            "man documents {n}, which the code does not read"
        );
    }
}

#[test]
fn every_completion_offers_every_long_option() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_distcc-auto"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let options = help
        .split("Options:")
        .nth(1)
        .unwrap()
        .split("Environment:")
        .next()
        .unwrap();
    let longs: Vec<&str> = options
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .map(|w| w.split('[').next().unwrap().split('=').next().unwrap())
        .collect();
    assert!(longs.len() >= 9, "{longs:?}");
    for file in [
        "shell/completions/distcc-auto.bash",
        "shell/completions/_distcc-auto",
        "shell/completions/distcc-auto.fish",
    ] {
        let text = read(file);
        for opt in &longs {
            let fish = format!("-l {}", &opt[2..]);
            assert!(
                text.contains(opt) || text.contains(&fish),
                "{file} does not offer {opt}"
            );
        }
    }
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces
/// as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

const DOCS: [&str; 4] = [
    "README.md",
    "doc/reference.md",
    "doc/performance.md",
    "doc/development.md",
];

#[test]
fn every_link_in_the_docs_leads_somewhere() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for doc in DOCS {
        let text = read(doc);
        let dir = Path::new(doc).parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let target = &rest[..rest.find(')').unwrap()];
            if target.starts_with("http") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() {
                Path::new(doc).to_path_buf()
            } else {
                dir.join(file)
            };
            assert!(
                base.join(&path).exists(),
                "{doc}: link to {target}: no {}",
                path.display()
            );
            if !anchor.is_empty() {
                let t = std::fs::read_to_string(base.join(&path)).unwrap();
                let found = t
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .any(|h| slug(h.trim_start_matches('#')) == anchor);
                assert!(found, "{doc}: link to {target}: no heading #{anchor}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} links");
}

#[test]
fn every_distcc_auto_command_shown_in_the_docs_parses() {
    let mut checked = 0;
    for doc in DOCS {
        let text = read(doc);
        let mut fenced = false;
        for line in text.lines() {
            if line.starts_with("```") {
                fenced = line.starts_with("```sh") && !fenced;
                continue;
            }
            if !fenced {
                continue;
            }
            let line = line.split(" # ").next().unwrap();
            for (i, _) in line.match_indices("distcc-auto ") {
                if line[..i].ends_with(['/', '-', '_']) {
                    continue;
                }
                let args: Vec<std::ffi::OsString> = line[i + "distcc-auto ".len()..]
                    .split([')', '|', ';', '&', '"', '>'])
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(Into::into)
                    .collect();
                let parsed = distcc_auto::cli::parse(args.clone());
                assert!(
                    parsed.is_ok(),
                    "{doc}: `distcc-auto {args:?}` does not parse: {line}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 3, "only {checked} commands");
}
