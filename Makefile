# Two commands on a fresh machine:  `make run` (train the default recipe)  and  `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.installed

# Debian runtime libraries of the environment families: Qt5 for Procgen (EnvPool), EGL/Mesa for DeepMind
# Control pixels. Installed when running as root with apt (CI, containers); otherwise `rlte doctor` says what is
# missing and the exact command.
APT_PACKAGES = libqt5gui5 libegl1 libgl1 libgl1-mesa-dri


.PHONY: test-robosuite
.PHONY: run test bench bench-envs doctor lint clean venv system-deps docs docs-serve

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else echo "not root or no apt-get: install $(APT_PACKAGES) yourself for Procgen and DMC pixels"; fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: system-deps $(STAMP)
	$(PY) recipes/ppo_cartpole.py

test: system-deps $(STAMP) test-robosuite
	$(PY) -m pytest -q

# robosuite needs mujoco 3.3 while dm_control needs 3.17: its plugin is tested in a virtualenv of its own
RS_VENV = .venv-robosuite
$(RS_VENV)/.installed: pyproject.toml plugins/rlte-robosuite/pyproject.toml
	$(PYTHON) -m venv $(RS_VENV)
	$(RS_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	$(RS_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(RS_VENV)/bin/python -m pip install --quiet pytest -e . -e ./plugins/rlte-robosuite
	touch $@

test-robosuite: $(RS_VENV)/.installed
	$(RS_VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir plugins/rlte-robosuite -c plugins/rlte-robosuite/pyproject.toml plugins/rlte-robosuite/tests

bench: $(STAMP)
	$(VENV)/bin/rlte bench cartpole

bench-envs: system-deps $(STAMP)
	$(VENV)/bin/rlte bench envs

# The documentation site (site/): strict, so a broken link or a docstring MkDocs cannot read fails the build.
# Component pages come from the registry of this virtualenv: plugins installed in it get their pages.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

doctor: $(STAMP)
	$(VENV)/bin/rlte doctor

lint: $(STAMP)
	$(VENV)/bin/ruff check rlte_plugins recipes tests plugins

clean:
	rm -rf $(VENV) $(RS_VENV) runs build site *.egg-info
