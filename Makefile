# Two entry points on a fresh Debian machine (run as root):
#   make demo   - install what is needed, build the lab, show a routed ping and its path
#   make test   - install what is needed, run the whole test suite
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
APT_PACKAGES := openvswitch-switch iproute2 iputils-ping ethtool nftables iperf3 tcpdump \
	postgresql procps util-linux python3-venv python3-pip

.PHONY: demo test system-deps venv lint down

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

test: system-deps venv
	$(VENV)/bin/python -m pytest -ra $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests

demo: system-deps venv
	$(VENV)/bin/dvr lab up
	$(VENV)/bin/dvr lab ping blue-1 orange-1
	$(VENV)/bin/dvr trace blue-1 orange-1

down: venv
	$(VENV)/bin/dvr lab down
