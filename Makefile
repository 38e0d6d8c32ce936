PYTHON ?= python3

.PHONY: demo test test-fast bench install

install:
	$(PYTHON) -m pip install -q -e ".[test]"

demo:
	PYTHONPATH=daemon:clients $(PYTHON) -m omerta_mesh.demo

test:
	$(PYTHON) -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow and not root"

bench:
	PYTHONPATH=daemon $(PYTHON) bench/handshakes.py
	PYTHONPATH=daemon $(PYTHON) bench/session_throughput.py
