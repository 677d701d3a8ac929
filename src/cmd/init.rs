use crate::error::Error;
use crate::render::shell::{Shell, init_script};

use super::print;

/// `init`: the shell file for `eval` (or `| source`), with this binary's
/// absolute path written in where the file would search for it, and
/// without the part that re-sources the file by its absolute path (eval'd
/// text is no file, and the file it names would be the caller's).
pub fn init(shell: &str) -> Result<(), Error> {
    let (text, syntax) = match shell {
        "bash" => (include_str!("../../shell/distcc.sh"), Shell::Sh),
        "zsh" => (include_str!("../../shell/distcc.zsh"), Shell::Sh),
        _ => (include_str!("../../shell/distcc.fish"), Shell::Fish),
    };
    let bin = std::env::current_exe()
        .map_err(|e| Error::Other(format!("init: cannot tell where this binary is: {e}")))?;
    let bin = bin
        .to_str()
        .filter(|b| b.starts_with('/') && !b.ends_with(" (deleted)"));
    let bin = bin.ok_or_else(|| {
        Error::Other("init: this binary's path is not a plain absolute path".into())
    })?;
    print(&init_script(text, bin, syntax))
}
