"""Old import path of the editor test data, kept only for test files not yet moved to the fixtures in
conftest.py (photo_batch, stats_batches, restyled_pairs, one_thread); new tests use the fixtures."""
from conftest import EDITOR_SIZE as SIZE  # noqa: F401
from conftest import _as01 as as01  # noqa: F401
from conftest import _concept_mask as concept_mask  # noqa: F401
from conftest import _photo_batch as photos  # noqa: F401
from conftest import _restyled_pairs as restyled_pairs  # noqa: F401
from conftest import _stats_batches as stats_batches  # noqa: F401
from conftest import one_thread  # noqa: F401 (fixture)
