# The two commands of the README: `make demo` and `make test`. Both set up first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-runtime test demo demo-dense bench clean
setup:
	bash scripts/setup.sh

# Robot/server install: ROS 2 + runtime only, no torch.
setup-runtime:
	PROFILE=runtime bash scripts/setup.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/mtl-split demo

# Dense perception (segmentation, depth, detection) on the split, end to end.
demo-dense: setup
	$(VENV)/bin/mtl-split demo --config training/configs/dense.yaml --name dense --frames 200

clean:
	rm -rf build runs models reports data/bags
