"""Analysis of models and runs: golden comparison with the reference, the study report, trajectory views.
Scripts use this package's API."""

from analysis.frontier import FrontierPoint, frontier_table, parse_frontier_options, run_frontier, write_frontier
from analysis.golden import FixtureError, check_file, companion_of, fixture_paths
from analysis.study_data import load_study
from analysis.study_report import write_report
from analysis.trajectory import Draw, record_trajectory, render, visualize
from dataset.format import DatasetFormatError
from utils.safe_load import CheckpointError
from utils.validation import ConfigError

# What a user's bad input raises: scripts print these as one line.
USER_ERRORS = (FixtureError, ConfigError, CheckpointError, DatasetFormatError)

__all__ = ["USER_ERRORS", "Draw", "FixtureError", "FrontierPoint", "check_file", "companion_of", "fixture_paths",
           "frontier_table", "load_study", "parse_frontier_options", "record_trajectory", "render", "run_frontier",
           "visualize", "write_frontier", "write_report"]
