#!/usr/bin/env bash
# Create .venv with ROS 2 Kilted (wheels), our pinned dependencies and the colcon-built
# mtl_split messages. Every step is stamped with a hash of its inputs, so a second run
# installs nothing and takes seconds.
#   scripts/setup.sh            runtime + training + dev (what `make test` and `make demo` need)
#   PROFILE=runtime scripts/setup.sh   robot/server only: no torch
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PROFILE=${PROFILE:-full}
PY=${PYTHON:-python3.11}
STAMPS=$VENV/.mtl_split_stamps
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
# run STEP KEY CMD...: run CMD unless STEP last succeeded with the same KEY.
step() {
  local name=$1 key=$2; shift 2
  if [ "$(cat "$STAMPS/$name" 2>/dev/null)" = "$key" ]; then say "$name: up to date"; return; fi
  say "$name ..."
  "$@"
  echo "$key" > "$STAMPS/$name"
}
# pip is chatty about the machine's local index dirs; keep its real messages.
# pipefail (set above) makes a failing pip fail the step, whatever grep finds.
pip_install() {
  "$VENV/bin/pip" install --progress-bar off "$@" 2>&1 \
    | { grep -vE "is ignored: it is neither|^Requirement already satisfied" || true; }
}

if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PY" >/dev/null || { echo "setup: $PY not found; install Python 3.11 (or set PYTHON=...)" >&2; exit 1; }
  say "creating $VENV"
  "$PY" -m venv "$VENV"
fi
mkdir -p "$STAMPS"

reqs=(requirements/ros.txt requirements/runtime.txt)
[ "$PROFILE" = full ] && reqs+=(requirements/training.txt requirements/dev.txt)
pip_args=(); for r in "${reqs[@]}"; do pip_args+=(-r "$r"); done
step "pip-$PROFILE" "$(hash_of "${reqs[@]}")" pip_install "${pip_args[@]}"

step cmake-fix "$(hash_of requirements/ros.txt scripts/fix_ros_wheel_cmake.py)" \
  "$VENV/bin/python" scripts/fix_ros_wheel_cmake.py

build_msgs() {
  # Build out of tree; install messages, node executables, launch and config into the venv.
  local build=$ROOT/build/colcon/$(echo "$VENV" | sha256sum | cut -c1-8)  # one per venv
  mkdir -p "$build"
  (
    cd "$build"
    export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH
    rm -rf src && mkdir src && ln -s "$ROOT" src/mtl_split
    "$VENV/bin/colcon" --log-base log build --base-paths src --build-base build \
      --merge-install --install-base "$VENV" \
      --cmake-args -DBUILD_TESTING=OFF -DMTL_SPLIT_INSTALL_PYTHON=OFF \
      "-DPython3_EXECUTABLE=$VENV/bin/python"
  )
}
step colcon "$(hash_of requirements/ros.txt CMakeLists.txt package.xml msg/* nodes/* launch/* config/*)" build_msgs

# compat mode = a .pth with the repo root: new packages in the tree import without reinstalling.
step editable "$(hash_of pyproject.toml scripts/setup.sh)" pip_install --no-deps --no-build-isolation --config-settings editable_mode=compat -e .

"$VENV/bin/python" -c "from mtl_split.msg import SharedFeatures, TaskResult, MultiTaskResult, BackboneInfo" \
  || { echo "setup: the mtl_split messages do not import; remove $STAMPS/colcon and rerun" >&2; exit 1; }
"$VENV/bin/mtl-split" bench --help >/dev/null \
  || { echo "setup: the mtl-split CLI (or its benchmarks) does not run; remove $STAMPS/editable and rerun" >&2; exit 1; }
say "ready: $VENV ($PROFILE)"
