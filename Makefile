# distcc-auto. `make demo` shows it working; `make test` runs every test.
PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
SHELL = /bin/bash
BINDIR = $(DESTDIR)$(PREFIX)/bin
SHAREDIR = $(DESTDIR)$(PREFIX)/share/distcc-auto
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
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
	shellcheck -x tests/*.sh .ci/run
	shellcheck --enable=all shell/distcc.sh
	zsh -n shell/distcc.zsh
	mandoc -T lint -W warning man/distcc-auto.1

demo:
	bash tests/demo.sh

bench: deps
	$(CARGO) bench --bench bench

install: all install-files

# Installs what is built, without building (the tests use it with BIN=).
install-files:
	install -d $(BINDIR) $(SHAREDIR) $(MANDIR)
	install -m 755 $(BIN) $(BINDIR)/distcc-auto
	install -m 644 shell/distcc.sh shell/distcc.zsh $(SHAREDIR)/
	install -m 644 man/distcc-auto.1 $(MANDIR)/distcc-auto.1

uninstall:
	rm -f $(BINDIR)/distcc-auto $(SHAREDIR)/distcc.sh $(SHAREDIR)/distcc.zsh $(MANDIR)/distcc-auto.1
	-rmdir $(SHAREDIR)

clean:
	$(CARGO) clean

.PHONY: all deps test lint demo bench install install-files uninstall clean
