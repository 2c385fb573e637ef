"""`python -m mtl_split_server --ros-args ...` (how the runner and the tests start it)."""
import sys

from mtl_split_server import main

sys.exit(main())
