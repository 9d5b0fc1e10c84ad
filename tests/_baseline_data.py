"""Old import path of the baselines' world exemplars, kept only for test files not yet moved to the
fixtures in conftest.py (snowy_cars, car); new tests use the fixtures."""
from conftest import _snowy_cars as snowy_cars  # noqa: F401

CAR = 0  # the world's "car" class (conftest's ``car`` fixture reads it from the world's CLASSES)
