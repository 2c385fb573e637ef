"""`python -m mtl_split_viz --ros-args ...` (how the runner and the tests start it)."""
import sys

from mtl_split_viz import main

sys.exit(main())
