# Shortcuts for ./dev.sh, which sets up .venv by itself (see the README).
.PHONY: demo test test-fast lint bench

demo:
	./dev.sh demo

test:
	./dev.sh test

test-fast:
	./dev.sh fast

lint:
	./dev.sh lint

bench:
	./dev.sh bench

# The Debian package, dist/omerta-mesh_<version>_<arch>.deb (docs/packaging.md), built with Debian's python3,
# the one it runs on; and the man pages in packaging/man, regenerated after a parser changes (a test checks).
.PHONY: deb man
deb:
	/usr/bin/python3 packaging/deb/build.py

man:
	./dev.sh python packaging/man/genman.py
