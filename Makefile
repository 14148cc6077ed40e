# The two commands a newcomer needs: `make demo` and `make test`. `make bench` measures us
# against skopeo and the shell recipe (docs/benchmarks.md); it is not part of `make test`.
# All three install what they need: Debian packages (stand-ins and independent clients) and a venv.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test image image-test bench lint typecheck pytest system-deps ci-tools clean

demo: system-deps $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHONPATH=. $(PY) scripts/demo.py

test: system-deps ci-tools $(STAMP) lint typecheck pytest

# Builds the Dockerfile without Docker Hub (buildah, a debootstrap base cached in .cache/image-base/)
# into the OCI layout build/image-oci (tag: the version); needs root.
image: $(STAMP)
	bash scripts/image-test.sh --build-only

# The same build, then the image run against the stand-ins, and the CI templates run inside it by
# gitlab-ci-local with podman; not part of `make test` (needs root, a few minutes cold).
image-test: system-deps ci-tools $(STAMP)
	bash scripts/image-test.sh

# BENCH_ARGS passes flags through, e.g. make bench BENCH_ARGS="--scenario 1,2 --runs 3".
bench: system-deps $(BENCH_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHONPATH=. $(PY) -m bench.run $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest

system-deps:
	bash scripts/install-system-deps.sh

# gitlab-ci-local (npm, into .ci-tools/) and rsync for tests/e2e; quick when already there.
ci-tools:
	bash scripts/install-ci-tools.sh

$(STAMP): pyproject.toml
	@bash scripts/make-venv.sh $(VENV)
	@echo "installing gitlab-xacct (editable) and its test tools into $(VENV)/"
	@# -qq: errors only (a failed install still says why); warnings about a pip.conf's
	@# index locations or setuptools' editable mode are not a newcomer's concern
	@$(PY) -m pip install -qq --upgrade pip
	@$(PY) -m pip install -qq -e '.[test]'
	@touch $@

# awscli (v1, from PyPI) for the shell recipe the benchmark compares with; not a dependency of
# the package. It pins botocore exactly, so ask for the release that fits the botocore already
# installed: otherwise pip could move the botocore that gitlab-xacct itself runs on.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet awscli "botocore==$$($(PY) -c 'import botocore; print(botocore.__version__)')"
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .demo
