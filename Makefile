# distcc-auto. `make demo` shows it working; `make test` runs every test.
PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
SHELL = /bin/bash
BINDIR = $(DESTDIR)$(PREFIX)/bin
SHAREDIR = $(DESTDIR)$(PREFIX)/share/distcc-auto
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
BASHCOMPDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHCOMPDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
BIN ?= target/release/distcc-auto

all:
	$(CARGO) build --release

deps:
	sh tests/deps.sh

# Tests that need network namespaces are marked ignored ("needs root");
# as root they run too. --no-fail-fast: the summary counts every test even
# when one fails. The last line sums up every test binary:
# "N passed, N failed, N skipped".
ROOT_TESTS = $(shell [ "$$(id -u)" = 0 ] && echo --include-ignored)
test: deps lint
	@mkdir -p target; set -o pipefail; $(CARGO) test --no-fail-fast -- $(ROOT_TESTS) 2>&1 | tee target/test.log; rc=$$?; \
	awk '/^test result:/ { p += $$4; f += $$6; i += $$8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' target/test.log; \
	exit $$rc

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings -W clippy::undocumented_unsafe_blocks
	shellcheck -x tests/*.sh .ci/run packaging/deb.sh shell/completions/distcc-auto.bash
	shellcheck --enable=all shell/distcc.sh
	zsh -n shell/distcc.zsh
	zsh -n shell/completions/_distcc-auto
	fish --no-execute shell/distcc.fish
	fish --no-execute shell/completions/distcc-auto.fish
	mandoc -T lint -W warning man/distcc-auto.1

demo:
	bash tests/demo.sh

# distcc-auto_VERSION_ARCH.deb in target/deb, with Debian's dpkg-deb.
deb: all
	sh packaging/deb.sh $(BIN) target/deb

bench: deps
	$(CARGO) bench --bench bench

# `make` builds; `make install` (also as root, without a Rust toolchain)
# only installs what was built.
install: install-files

# Installs $(BIN) and the files beside it, without building (the tests use
# it with BIN=).
install-files:
	@test -x $(BIN) || { echo "$(BIN) is not built: run 'make' first (as yourself)" >&2; exit 1; }
	install -d $(BINDIR) $(SHAREDIR) $(MANDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR)
	install -m 755 $(BIN) $(BINDIR)/distcc-auto
	install -m 644 shell/distcc.sh shell/distcc.zsh shell/distcc.fish $(SHAREDIR)/
	install -m 644 man/distcc-auto.1 $(MANDIR)/distcc-auto.1
	install -m 644 shell/completions/distcc-auto.bash $(BASHCOMPDIR)/distcc-auto
	install -m 644 shell/completions/_distcc-auto $(ZSHCOMPDIR)/_distcc-auto
	install -m 644 shell/completions/distcc-auto.fish $(FISHCOMPDIR)/distcc-auto.fish

uninstall:
	rm -f $(BINDIR)/distcc-auto $(SHAREDIR)/distcc.sh $(SHAREDIR)/distcc.zsh \
		$(SHAREDIR)/distcc.fish $(MANDIR)/distcc-auto.1 $(BASHCOMPDIR)/distcc-auto \
		$(ZSHCOMPDIR)/_distcc-auto $(FISHCOMPDIR)/distcc-auto.fish
	-rmdir $(SHAREDIR)

clean:
	$(CARGO) clean

.PHONY: all deps test lint demo deb bench install install-files uninstall clean
