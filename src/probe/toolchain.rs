//! Which compiler made an object file, read from the object itself: GCC
//! and Clang write their identity into the `.comment` section
//! (`GCC: (Debian 12.2.0-14) 12.2.0`, `clang version ...`), and the ELF
//! header says the target (class, byte order, machine, OS ABI). The
//! toolchain check compares what a worker's compiler makes of the check
//! file with what this machine's makes of it. Only what is needed of ELF
//! is parsed, with the standard library.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::probe::check;

/// A compiler's identity as an object file shows it.
pub fn identify(obj: &[u8]) -> Result<String, String> {
    let elf = Elf::parse(obj).ok_or("the object file is not ELF")?;
    let comment = elf
        .section(".comment")
        .map(|bytes| {
            let mut parts: Vec<String> = bytes
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| crate::worker::shown(String::from_utf8_lossy(p).trim(), 200))
                .collect();
            parts.dedup();
            parts.join("; ")
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "an unnamed compiler (no .comment)".into());
    Ok(format!("{comment} ({})", elf.target()))
}

/// What this machine's `compiler` makes of the check file, compiled as a
/// worker compiles it: preprocessed source, `-c`, in a directory of its own.
pub fn local(compiler: &str) -> Result<String, String> {
    let real = crate::probe::ccache::real_compiler(compiler)
        .ok_or_else(|| format!("'{compiler}' is not on PATH here"))?;
    let dir = private_dir().map_err(|e| format!("cannot make a directory for the check: {e}"))?;
    let src = dir.join("distcc-auto-check.i");
    let obj = dir.join("distcc-auto-check.o");
    let result = (|| {
        std::fs::write(&src, check::SOURCE).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&real);
        let out = crate::process::signals::as_started(&mut cmd)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", real.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed here: {}",
                real.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        identify(&std::fs::read(&obj).map_err(|e| e.to_string())?)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let dir = base.join(format!("distcc-auto-check-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no unique directory name"))
}

/// The little of an ELF file that says who made it and for what.
struct Elf<'a> {
    bytes: &'a [u8],
    class64: bool,
    little: bool,
}

impl<'a> Elf<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Elf<'a>> {
        if bytes.get(..4)? != b"\x7fELF" {
            return None;
        }
        let class64 = match bytes.get(4)? {
            1 => false,
            2 => true,
            _ => return None,
        };
        let little = match bytes.get(5)? {
            1 => true,
            2 => false,
            _ => return None,
        };
        Some(Elf {
            bytes,
            class64,
            little,
        })
    }

    fn uint(&self, at: usize, len: usize) -> Option<u64> {
        let b = self.bytes.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if self.little { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    }

    /// (section header offset, entry size, count, index of the names).
    fn section_table(&self) -> Option<(usize, usize, usize, usize)> {
        let (off, size, num, strndx) = if self.class64 {
            (self.uint(0x28, 8)?, 0x3a, 0x3c, 0x3e)
        } else {
            (self.uint(0x20, 4)?, 0x2e, 0x30, 0x32)
        };
        Some((
            usize::try_from(off).ok()?,
            self.uint(size, 2)? as usize,
            self.uint(num, 2)? as usize,
            self.uint(strndx, 2)? as usize,
        ))
    }

    /// (offset, size) of section `i`'s contents, and its name's offset.
    fn section_at(&self, i: usize) -> Option<(usize, usize, usize)> {
        let (off, entsize, num, _) = self.section_table()?;
        if i >= num {
            return None;
        }
        let h = off.checked_add(i.checked_mul(entsize)?)?;
        let name = self.uint(h, 4)? as usize;
        let (o, s) = if self.class64 {
            (self.uint(h + 0x18, 8)?, self.uint(h + 0x20, 8)?)
        } else {
            (self.uint(h + 0x10, 4)?, self.uint(h + 0x14, 4)?)
        };
        Some((usize::try_from(o).ok()?, usize::try_from(s).ok()?, name))
    }

    fn section(&self, wanted: &str) -> Option<&'a [u8]> {
        let (_, _, num, strndx) = self.section_table()?;
        let (names, names_len, _) = self.section_at(strndx)?;
        let names = self.bytes.get(names..names.checked_add(names_len)?)?;
        (0..num.min(4096)).find_map(|i| {
            let (o, s, n) = self.section_at(i)?;
            let name = names.get(n..)?.split(|&b| b == 0).next()?;
            (name == wanted.as_bytes()).then(|| self.bytes.get(o..o.checked_add(s)?))?
        })
    }

    fn target(&self) -> String {
        let machine = match self.uint(0x12, 2) {
            Some(0x03) => "i386".to_string(),
            Some(0x08) => "mips".into(),
            Some(0x14) => "powerpc".into(),
            Some(0x15) => "powerpc64".into(),
            Some(0x16) => "s390".into(),
            Some(0x28) => "arm".into(),
            Some(0x3e) => "x86-64".into(),
            Some(0xb7) => "aarch64".into(),
            Some(0xf3) => "riscv".into(),
            Some(0x102) => "loongarch".into(),
            Some(m) => format!("machine {m:#x}"),
            None => "unknown machine".into(),
        };
        let abi = match self.bytes.get(7) {
            Some(0) | None => String::new(),
            Some(a) => format!(", OS ABI {a}"),
        };
        format!(
            "{machine}, ELF{}, {}-endian{abi}{}",
            if self.class64 { 64 } else { 32 },
            if self.little { "little" } else { "big" },
            self.flags()
        )
    }

    /// `e_flags`, where the processor-specific ABI lives (ARM's float ABI,
    /// RISC-V's float ABI and RVE, MIPS's ABI): objects that differ there
    /// do not link together. Nothing when 0 (x86-64 has none).
    fn flags(&self) -> String {
        let at = if self.class64 { 0x30 } else { 0x24 };
        let flags = match self.uint(at, 4) {
            Some(0) | None => return String::new(),
            Some(f) => f,
        };
        let named = match self.uint(0x12, 2) {
            Some(0x28) if flags & 0x400 != 0 => ", hard-float",
            Some(0x28) if flags & 0x200 != 0 => ", soft-float",
            Some(0xf3) => match flags & 0x6 {
                0 => ", soft-float ABI",
                2 => ", single-float ABI",
                4 => ", double-float ABI",
                _ => ", quad-float ABI",
            },
            _ => "",
        };
        format!(", flags {flags:#x}{named}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_that_differ_in_e_flags_are_told_apart() {
        // This machine's real object, its header's e_flags patched as an
        // ARM hard-float and soft-float, and a RISC-V double-float, compiler
        // would have made it.
        let dir = private_dir().unwrap();
        let (src, obj) = (dir.join("f.c"), dir.join("f.o"));
        std::fs::write(&src, "int f(void) { return 1; }\n").unwrap();
        let ok = Command::new("cc")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status();
        assert!(ok.unwrap().success());
        let real = std::fs::read(&obj).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let with = |machine: u16, flags: u32| {
            let mut o = real.clone();
            o[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
            o[0x30..0x34].copy_from_slice(&flags.to_le_bytes());
            identify(&o).unwrap()
        };
        let hard = with(0x28, 0x0500_0400);
        let soft = with(0x28, 0x0500_0200);
        assert!(
            hard.contains("hard-float") && soft.contains("soft-float"),
            "{hard} / {soft}"
        );
        assert_ne!(hard, soft);
        assert!(with(0xf3, 0x5).contains("double-float ABI"));
        assert_ne!(with(0xf3, 0x5), with(0xf3, 0x1));
        // x86-64 has no flags: nothing added.
        assert!(!identify(&real).unwrap().contains("flags"));
    }

    #[test]
    fn this_machines_compiler_is_named_from_its_object() {
        // The real cc of this machine, through the same path as the check.
        let id = local("cc").unwrap();
        assert!(id.contains("GCC: (") || id.contains("clang"), "{id}");
        assert!(id.contains("ELF64") || id.contains("ELF32"), "{id}");
        assert_eq!(
            local("cc").unwrap(),
            id,
            "the same compiler, the same identity"
        );
        assert!(local("no-such-compiler-here").is_err());
    }

    #[test]
    fn anything_but_elf_is_refused_and_truncation_is_safe() {
        assert!(identify(b"not an object").is_err());
        assert!(identify(b"").is_err());
        // Headers that point past the end: no panic, no comment.
        let mut fake = b"\x7fELF\x02\x01\x01\x00".to_vec();
        fake.resize(64, 0xff);
        let id = identify(&fake).unwrap();
        assert!(id.contains("no .comment") && id.contains("ELF64"), "{id}");
    }
}
