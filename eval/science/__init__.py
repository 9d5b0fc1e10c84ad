"""The science summary of bench runs: the paper's selection at each clean budget, with 95% intervals.

Reads bench folders whose cells store per-image outcomes (the format of ``notes/SCIENCE_FORMAT.md``:
rows with ``_outcomes``, units' reference images in ``unedited.json`` or in the cells' ``_unit`` records);
the folders of one model (stages at other sites, exemplar counts, methods) are pooled. Writes:

* ``selection.csv``: per unit (pair x target class x exemplar count x seed), method and budget, the
  setting chosen on validation among those whose *paired* clean change (``clean_drop``) is within the
  budget; "no change" is always a candidate (:func:`~modeledit.eval.protocol.choose_setting`). The main
  comparison selects at each model's deepest site (``--sites all``: the site is one more hyperparameter).
* ``summary.csv``: per model x method x budget x exemplar count, errors corrected on target and other
  classes, same-style (test) and held-out-style images, and the clean drop, each with a 95% interval
  (a hierarchical bootstrap: units resampled, then the images within each unit; the clean images,
  shared by all units, resampled once per replicate), the number of units, of units with no
  qualifying setting / no setting beating no change, and the sites and strengths chosen.
* ``by_site.csv``: the same with the selection restricted to one site (site depth), unconstrained and
  within budgets, on the units run at every site of the method (:func:`common_units`); ``by_exemplars.csv``:
  the main selection per exemplar count on the units run at every count of the method (:func:`common_exemplar_units`);
  ``ablations.csv``: paired differences on the same units and images (rank: edit_full - edit, mask:
  edit_masked - edit, solver: edit_adam - edit, vs: edit - each baseline); ``resolution.csv``: clean-set
  size and what one budget is in images.
* ``science.json``: every number above; ``summary.md``: the tables as markdown; ``figures/``: the paper's figures 6-3, 6-4, 6-7, 6-8 and 6-9 with
  error bars, one set per world classifier.

Example:
    >>> write_science_summary(["results/world/science/world_vgg", "results/world/science/world_resnet"],
    ...                       "results/world/science/summary")

The modules, one concern each: :mod:`~modeledit.eval.science.data` (reading bench folders),
:mod:`~modeledit.eval.science.splits` (the run record, the split check), :mod:`~modeledit.eval.science.selection`,
:mod:`~modeledit.eval.science.aggregate` (intervals, paired differences), :mod:`~modeledit.eval.science.figures`,
:mod:`~modeledit.eval.science.text` (markdown) and :mod:`~modeledit.eval.science.summary` (the tables and files).

or ``modeledit science results/world/science/world_vgg results/world/science/world_resnet --out
results/world/science/summary`` (:mod:`modeledit.commands.science`; a folder holding bench folders stands for all of them).
"""
from __future__ import annotations

from modeledit.eval.datasets import check_disjoint  # noqa: F401 (the one disjointness check)
from modeledit.eval.science.data import (BUDGETS, BenchData, GROUPS, NO_CHANGE, PAPER_BUDGET, UNIT_KEYS, WHO,
                                         bench_folders, is_bench_folder, load_bench, merge_benches)
from modeledit.eval.science.splits import (RUN_KEYS, run_record, selection_table, verify_splits)
from modeledit.eval.science.selection import (check_consistency, clean_flips, select, unit_codes)
from modeledit.eval.science.aggregate import (_clusters, aggregate, compare, resolution)
from modeledit.eval.science.figures import write_figures
from modeledit.eval.science.text import (markdown_summary, sensitivity_markdown)
from modeledit.eval.science.summary import (ScienceResult, common_exemplar_units, common_units, main_sites,
                                            science_tables, write_science_summary)

__all__ = ["BUDGETS", "BenchData", "GROUPS", "NO_CHANGE", "PAPER_BUDGET", "RUN_KEYS", "ScienceResult", "UNIT_KEYS",
           "WHO", "aggregate", "bench_folders", "check_consistency", "check_disjoint", "clean_flips",
           "common_exemplar_units", "common_units", "compare", "is_bench_folder", "load_bench", "main_sites",
           "markdown_summary", "merge_benches", "resolution", "run_record", "science_tables", "select",
           "selection_table", "sensitivity_markdown", "unit_codes", "verify_splits", "write_figures",
           "write_science_summary"]
