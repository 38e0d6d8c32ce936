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
