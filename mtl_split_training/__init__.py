"""Offline side of mtl_split: datasets, split models, MTL/STL training, bundle export.

Needs torch/timm; nothing on the robot or server imports this package.
"""
