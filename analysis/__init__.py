"""Analysis of models and runs: golden comparison with the reference, the study report, trajectory views.
Scripts use this package's API."""

import evaluation
from analysis.frontier import FrontierPoint, frontier_table, parse_frontier_options, run_frontier, write_frontier
from analysis.golden import FixtureError, check_file, companion_of, fixture_paths
from analysis.study_data import load_study
from analysis.study_report import write_report
from analysis.trajectory import Draw, record_trajectory, render, visualize

# What a user's bad input raises: scripts print these as one line. The analyses read what evaluation
# reads, plus golden fixtures.
USER_ERRORS = (FixtureError, *evaluation.USER_ERRORS)

__all__ = ["USER_ERRORS", "Draw", "FixtureError", "FrontierPoint", "check_file", "companion_of", "fixture_paths",
           "frontier_table", "load_study", "parse_frontier_options", "record_trajectory", "render", "run_frontier",
           "visualize", "write_frontier", "write_report"]
