//! Whether the build should get `CCACHE_PREFIX=distcc`.
//!
//! ccache runs the first compiler on PATH that is not ccache itself, with
//! `CCACHE_PREFIX` in front. When that compiler is already one of distcc's
//! masquerade links (`/usr/lib/distcc/cc -> ../../bin/distcc`), a prefix
//! would run `distcc /usr/lib/distcc/cc`, which fails ("distcc: Invalid
//! argument"). So the prefix is set only when the user has none and no
//! compiler on PATH already goes through distcc.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The compilers ccache is commonly asked to run.
const COMPILERS: [&str; 6] = ["cc", "c++", "gcc", "g++", "clang", "clang++"];

/// The value to give CCACHE_PREFIX, if any. `user_set`: the user has a
/// CCACHE_PREFIX of their own, which is kept.
pub fn prefix(path: Option<&OsStr>, user_set: bool) -> Option<&'static str> {
    if user_set {
        return None;
    }
    let dirs: Vec<PathBuf> = path.map_or_else(Vec::new, |p| std::env::split_paths(p).collect());
    let masqueraded = COMPILERS
        .iter()
        .any(|c| compiler_for_ccache(&dirs, c).is_some_and(|p| is_named(&p, "distcc")));
    (!masqueraded).then_some("distcc")
}

/// `prefix` for this process's PATH and CCACHE_PREFIX.
pub fn prefix_here() -> Option<&'static str> {
    prefix(
        std::env::var_os("PATH").as_deref(),
        std::env::var_os("CCACHE_PREFIX").is_some(),
    )
}

/// What ccache would run for `name`: the first executable on PATH that is
/// not ccache, resolved through its links.
fn compiler_for_ccache(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    executables(dirs, name).find(|real| !is_named(real, "ccache"))
}

/// The first executable called `name` on this process's PATH (absolute
/// entries only), resolved through its links.
pub fn on_path(name: &str) -> Option<PathBuf> {
    executables(&path_dirs(), name).next()
}

/// This process's PATH, as directories.
fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH").map_or_else(Vec::new, |p| std::env::split_paths(&p).collect())
}

/// The executables called `name` in the absolute `dirs`, in order,
/// resolved through their links.
fn executables<'a>(dirs: &'a [PathBuf], name: &'a str) -> impl Iterator<Item = PathBuf> + 'a {
    dirs.iter()
        .filter(|d| d.is_absolute())
        .filter_map(move |d| {
            let real = std::fs::canonicalize(d.join(name)).ok()?;
            let exec = real.metadata().ok()?.permissions().mode() & 0o111 != 0;
            exec.then_some(real)
        })
}

/// The compiler that `name` runs here when neither ccache nor distcc is in
/// the way: the first executable on PATH that is neither (a path is taken
/// as it is).
pub fn real_compiler(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return std::fs::canonicalize(name).ok();
    }
    executables(&path_dirs(), name)
        .find(|real| !is_named(real, "ccache") && !is_named(real, "distcc"))
}

fn is_named(p: &Path, name: &str) -> bool {
    p.file_name() == Some(OsStr::new(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A tree like Debian's: bin/{distcc,ccache,gcc}, lib/distcc/cc and
    /// lib/ccache/cc as links.
    fn tree() -> PathBuf {
        let root = std::env::temp_dir().join(format!("distcc-auto-ccache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["bin", "lib/distcc", "lib/ccache"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["distcc", "ccache", "gcc"] {
            let p = root.join("bin").join(f);
            std::fs::write(&p, "").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        symlink("gcc", root.join("bin/cc")).unwrap();
        symlink("../../bin/distcc", root.join("lib/distcc/cc")).unwrap();
        symlink("../../bin/ccache", root.join("lib/ccache/cc")).unwrap();
        root
    }

    #[test]
    fn prefix_only_when_no_compiler_goes_through_distcc() {
        let root = tree();
        let path = |dirs: &[&str]| std::env::join_paths(dirs.iter().map(|d| root.join(d))).unwrap();
        // ccache first, then the real compiler: ccache needs the prefix.
        let p = path(&["lib/ccache", "bin"]);
        assert_eq!(prefix(Some(&p), false), Some("distcc"));
        // The user's own prefix is kept.
        assert_eq!(prefix(Some(&p), true), None);
        // distcc's masquerade first: ccache would find it; no prefix.
        let p = path(&["lib/distcc", "lib/ccache", "bin"]);
        assert_eq!(prefix(Some(&p), false), None);
        // ccache, then the masquerade: ccache skips itself and finds distcc.
        let p = path(&["lib/ccache", "lib/distcc", "bin"]);
        assert_eq!(prefix(Some(&p), false), None);
        // No ccache at all: the prefix is harmless, as before.
        let p = path(&["bin"]);
        assert_eq!(prefix(Some(&p), false), Some("distcc"));
        assert_eq!(prefix(None, false), Some("distcc"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
