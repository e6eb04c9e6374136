"""Configuration search for the seeds' exploration protocols (003/004): a UCB tree of runs,
``Mutation:`` lines, blocks, locked parameters, robustness re-runs, an append-only analysis log and
a working-memory file, parallel slots (process pool or Ray), resumable from ``tree.json``."""

from eirnn_fast.explore.config import ExploreConfig
from eirnn_fast.explore.logfmt import IterEntry, Mutation, mutations_from_text, parse_log, parse_mutation_line
from eirnn_fast.explore.proposers import RandomProposer
from eirnn_fast.explore.runner import ExplorationInterrupted, Explorer
from eirnn_fast.explore.space import (
    Classifier,
    Constraints,
    LockedParameterError,
    ParamSpace,
    Reward,
    SearchSpaceError,
)
from eirnn_fast.explore.tree import ROOT, ExplorationTree, Node

__all__ = [
    "IterEntry",
    "Mutation",
    "mutations_from_text",
    "parse_log",
    "parse_mutation_line",
    "ExplorationInterrupted",
    "ExploreConfig",
    "Explorer",
    "Classifier",
    "Constraints",
    "LockedParameterError",
    "ParamSpace",
    "RandomProposer",
    "Reward",
    "SearchSpaceError",
    "ROOT",
    "ExplorationTree",
    "Node",
]
