# train_fou developer entry points. `make demo` and `make test` work on a fresh
# clone: they create .venv, install the pinned ROS 2 Kilted wheels, repair the
# venv and build the package with colcon into the venv (the venv is the
# install space, so nothing has to be sourced).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
export CMAKE_PREFIX_PATH := $(VENV)
export AMENT_PREFIX_PATH := $(VENV)
export ROS_LOG_DIR := $(CURDIR)/log/ros
export PYTHONUNBUFFERED := 1

SETUP_STAMP := $(VENV)/.setup-stamp
BUILD_STAMP := $(VENV)/.build-stamp
BUILD_INPUTS := package.xml CMakeLists.txt colcon.meta tools/entry_point.py.in \
	$(wildcard msg/*.msg) $(shell find src launch config models bags -type f ! -name '*.pyc' 2>/dev/null)

.PHONY: setup build test demo lock clean train-setup train-smoke eval-real
.DEFAULT_GOAL := test

setup: $(BUILD_STAMP)

$(SETUP_STAMP): requirements.txt tools/repair_venv.py
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VPY) tools/repair_venv.py
	@touch $@

$(BUILD_STAMP): $(SETUP_STAMP) $(BUILD_INPUTS)
	cd $(CURDIR) && colcon --log-base log build --base-paths $(CURDIR) --build-base build \
		--install-base $(VENV) --merge-install --symlink-install \
		--cmake-args -DPython3_EXECUTABLE=$(VPY) -DBUILD_TESTING=OFF \
		--event-handlers console_stderr+ status- summary-
	@touch $@

build: $(BUILD_STAMP)

# The training chain's smoke run is part of the tests (issue: CI runs it); its venv is separate.
# The photo backgrounds' tests skip in .venv (no photo packages there): they run again in the training venv.
test: setup train-smoke
	$(VPY) -m pytest -q tests
	cd $(CURDIR) && $(TPY) -m pytest -q -p no:cacheprovider tests/test_training_backgrounds.py

demo: setup
	$(VENV)/bin/train-fou replay $(CURDIR)/bags/cliff_danger.mcap --hub sim

lock:
	$(VPY) tools/lock.py > requirements.txt

clean:
	rm -rf build log $(VENV)

# --- training workspace (training/README.md): own venv with torch + ultralytics, never in .venv.
# The venv finds train_fou (render, vision) and training/ from this source tree through a .pth file.
TVENV := $(CURDIR)/.venv-train
TPY := $(TVENV)/bin/python
TRAIN_STAMP := $(TVENV)/.setup-stamp

train-setup: $(TRAIN_STAMP)

$(TRAIN_STAMP): training/requirements.txt training/requirements-nodeps.txt
	@test -x $(TPY) || $(PYTHON) -m venv $(TVENV)
	$(TPY) -m pip install --quiet --disable-pip-version-check -r training/requirements.txt
	$(TPY) -m pip install --quiet --disable-pip-version-check --no-deps -r training/requirements-nodeps.txt
	$(TPY) -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'train_fou_src.pth').write_text('$(CURDIR)/src\n$(CURDIR)\n')"
	@touch $(TVENV)/COLCON_IGNORE
	@touch $@

train-smoke: train-setup
	cd $(CURDIR) && nice -n 5 $(TPY) -m training.smoke

# The detector on real labelled photos (training/README.md): REAL_DEV holds images/ and the Label Studio
# export labelstudio_export.json; without it, one line and success (CI has no photos).
# EVAL_REAL_ARGS passes more options (--no-refine, --map ..., --out DIR).
REAL_DEV ?= ../shared/real_dev
MODEL ?= models/signs.onnx
eval-real: setup
	@if [ ! -f "$(REAL_DEV)/labelstudio_export.json" ]; then \
		echo "eval-real: no labelled photos in $(REAL_DEV) (put images/ and labelstudio_export.json there, or pass REAL_DEV=DIR); skipped"; \
	else \
		PYTHONPATH=src:. nice $(VPY) -m training eval-real $(MODEL) \
			--export $(REAL_DEV)/labelstudio_export.json --images $(REAL_DEV)/images $(EVAL_REAL_ARGS); \
	fi

# The Jetson route (issue 18), part of `make test`: every pin of requirements-jetson.txt has a
# distribution for Python 3.10 on manylinux aarch64 (reads the package index), and the code the
# Jetson runs uses nothing newer than Python 3.10.
.PHONY: jetson-check
test: jetson-check
jetson-check: setup
	$(VPY) tools/check_jetson_pins.py requirements-jetson.txt
	$(VENV)/bin/vermin --target=3.10- --violations --no-tips -q src launch training/engine.py
	@echo "vermin: src/ launch/ training/engine.py run on Python 3.10"

# ruff (ruff.toml), part of `make test`: pyflakes, pycodestyle, bugbear, pyupgrade to 3.10, and training/'s
# marked lazy imports.
.PHONY: lint
test: lint
lint: setup
	$(VENV)/bin/ruff check .

# The simulation image (issue 17, docker/README.md), not part of `make test` (minutes, needs an engine):
# docker/Dockerfile.sim on BASE_IMAGE (Debian bookworm with apt; where no registry is reachable, make
# one with tools/make_base_image.sh and pass BASE_IMAGE=localhost/debian-bookworm-base:minbase). The
# build runs `make demo` as its smoke test, then the image's size is printed. The engine is docker when
# its daemon answers, else podman (CONTAINER_ENGINE=docker|podman to choose). podman builds with
# chroot isolation and vfs storage by default, which need neither user namespaces, rlimits nor
# overlayfs (a build in a container or an unprivileged VM); where podman runs containers normally,
# PODMAN_BUILD_FLAGS= PODMAN_STORAGE_FLAGS= use its own isolation and storage (the base image must be
# in the same storage).
.PHONY: image
IMAGE ?= train_fou:sim
BASE_IMAGE ?= debian:bookworm-20250520-slim
IMAGE_PLATFORM ?= linux/amd64
CONTAINER_ENGINE ?= $(shell if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; \
	elif command -v podman >/dev/null; then echo podman; fi)
PODMAN_STORAGE_FLAGS ?= --storage-driver vfs
PODMAN_BUILD_FLAGS ?= --isolation chroot
# A CA bundle for pip behind a TLS-intercepting proxy, handed to the build as a secret (not kept in the
# image); by default the host's own pip setting, if any.
BUILD_CA_BUNDLE ?= $(PIP_CERT)
image:
	@set -e; engine='$(CONTAINER_ENGINE)'; \
	case "$$engine" in \
	  docker) cli=(docker); build=(env DOCKER_BUILDKIT=1 BUILDKIT_PROGRESS=plain docker build);; \
	  podman) cli=(podman $(PODMAN_STORAGE_FLAGS)); build=("$${cli[@]}" build --format docker $(PODMAN_BUILD_FLAGS));; \
	  *) echo "make image: no container engine: start docker, or install podman (or set CONTAINER_ENGINE)" >&2; exit 2;; \
	esac; \
	secret=(); if [ -n '$(BUILD_CA_BUNDLE)' ]; then secret=(--secret id=pip_cert,src='$(BUILD_CA_BUNDLE)'); fi; \
	set -x; start=$$SECONDS; \
	"$${build[@]}" --platform $(IMAGE_PLATFORM) -f docker/Dockerfile.sim -t $(IMAGE) "$${secret[@]}" \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg SMOKE_ROS_DOMAIN_ID=$$((RANDOM % 100 + 101)) $(CURDIR); \
	{ set +x; } 2>/dev/null; \
	bytes=$$("$${cli[@]}" image inspect --format '{{.Size}}' $(IMAGE)); \
	echo "make image: $(IMAGE) built with $$engine from $(BASE_IMAGE) in $$((SECONDS - start)) s, $$((bytes / 1000000)) MB"
