"""`python -m mtl_split_edge --ros-args ...` (how the runner and the tests start it)."""
import sys

from mtl_split_edge import main

sys.exit(main())
