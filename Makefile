# Two entry points on a fresh Debian machine (run as root):
#   make demo   - install what is needed, build the lab, show a routed ping and its path
#   make test   - install what is needed, run the whole test suite
#   make bench  - install what is needed, run the benchmarks (dvr against OVN 23.03 and
#                 the rest), merge bench/results.json, add a dated section to RESULTS.md
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
# what the lab needs at run time
APT_RUNTIME := openvswitch-switch iproute2 iputils-ping ethtool nftables iperf3 tcpdump \
	procps util-linux python3-venv python3-pip
# and what the test suite needs besides (a real PostgreSQL, Chromium for the browser test)
APT_TEST := postgresql chromium
# and what the benchmarks need besides (the OVN reference lab)
APT_BENCH := ovn-central ovn-host iperf3 strace

.PHONY: demo test bench bench-scale fuzz compat system-deps test-deps bench-deps venv lint down

system-deps: APT_PACKAGES = $(APT_RUNTIME)
test-deps: APT_PACKAGES = $(APT_RUNTIME) $(APT_TEST)
bench-deps: APT_PACKAGES = $(APT_RUNTIME) $(APT_BENCH)
system-deps test-deps bench-deps:
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
	$(VENV)/bin/pip install -q -e '.[test,postgresql]'
	touch $@

test: test-deps venv
	$(VENV)/bin/python -m pytest -ra $(PYTEST_ARGS)

# every benchmark suite (bench/run_all.py: about 10 minutes by default; more runs with
# BENCH_ARGS="--runs 5 --seconds 10"); it brings up labs of its own and takes them down
bench: bench-deps venv
	BENCH_COMMAND="make bench$(if $(BENCH_ARGS), BENCH_ARGS=\"$(BENCH_ARGS)\")" \
	$(VENV)/bin/python bench/run_all.py $(BENCH_ARGS)

# the control plane with HOSTS simulated hosts (bench/bench_scale.py: the real agent loop,
# the real dvr-server on SQLite or PostgreSQL with SERVERS processes); AGENTS=full: each host's
# real HostDataplane on the fake drivers, AGENTS=loop: each view taken as applied (the control
# plane alone; a sample of hosts' reconciles is measured apart), AGENTS=auto: full up to 300
# hosts, loop above.  Merges bench/results.json and appends to RESULTS.md.  100 hosts take ~5
# minutes; more with BENCH_SCALE_ARGS="--small-changes 20"
HOSTS ?= 100
BACKEND ?= sqlite
SERVERS ?= 1
AGENTS ?= auto
bench-scale: venv $(if $(filter postgresql,$(BACKEND)),test-deps)
	BENCH_COMMAND="make bench-scale HOSTS=$(HOSTS) BACKEND=$(BACKEND) SERVERS=$(SERVERS) AGENTS=$(AGENTS)$(if \
	  $(BENCH_SCALE_ARGS), BENCH_SCALE_ARGS=\"$(BENCH_SCALE_ARGS)\")" \
	$(VENV)/bin/python bench/bench_scale.py --hosts $(HOSTS) --backend $(BACKEND) \
	  --servers $(SERVERS) --agents $(AGENTS) --update-results $(BENCH_SCALE_ARGS)

# openstacksdk's own functional network tests against a private dvr-server (about 30 s;
# not part of 'test'): counts by scope, per-test results in artifacts/compat/
compat: venv
	$(VENV)/bin/python tests/compat/run_sdk_functional.py $(COMPAT_ARGS)

# the API fuzz suite for longer than `make test` runs it, with a fresh seed each time
# (replay one with DVR_FUZZ_SEED=N; DVR_FUZZ_EXAMPLES / DVR_FUZZ_STEPS set the length)
fuzz: test-deps venv
	@seed=$${DVR_FUZZ_SEED:-$$RANDOM$$RANDOM}; echo "fuzz seed: $$seed"; \
	DVR_FUZZ_SEED=$$seed DVR_FUZZ_EXAMPLES=$${DVR_FUZZ_EXAMPLES:-40} \
	DVR_FUZZ_STEPS=$${DVR_FUZZ_STEPS:-10} DVR_FUZZ_ALL_TAGS=1 \
	$(VENV)/bin/python -m pytest -ra tests/server/test_server_fuzz.py $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests

demo: system-deps venv
	$(VENV)/bin/dvr lab up
	@echo; echo "== a routed ping: blue-1 (compute-1) -> orange-1 (compute-2)"
	$(VENV)/bin/dvr lab ping blue-1 orange-1
	@echo; echo "== its path, flow by flow, checked against the real switches"
	$(VENV)/bin/dvr trace blue-1 orange-1 --verify
	@echo; echo "The lab is still running. '. $(VENV)/bin/activate' puts dvr on your PATH, then:"
	@echo "  dvr lab status | dvr lab ping SRC DST | dvr trace SRC DST | dvr flows compute-1 --explain"
	@echo "  eval \"\$$(dvr lab env)\"; openstack router list   (the admin token for the openstack CLI)"
	@echo "  open http://127.0.0.1:9696/ui in a browser on this machine for the web view"
	@echo "    (it asks for the admin token: OS_TOKEN in the output of 'dvr lab env')"
	@echo "  make down   (or dvr lab down) removes everything"

down: venv
	$(VENV)/bin/dvr lab down
