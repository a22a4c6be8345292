"""Generation of listener reactions: online DDIM sampling, whole splits, baselines, plots."""

from perfrdiff.generation.inputs import check_generation_options, check_history, read_history
from perfrdiff.generation.plots import plot_reactions
from perfrdiff.generation.reactions import (
    EvaluationSet,
    build_sampler,
    chance_predictions,
    generate_split,
    load_evaluation_set,
    save_predictions,
    with_listener_history,
)
from perfrdiff.generation.streaming import (
    ReactionSampler,
    SamplerConfig,
    StreamingGenerator,
    generate_clips,
    generate_dataset,
    guided_x0,
)

__all__ = [
    "EvaluationSet",
    "ReactionSampler",
    "SamplerConfig",
    "StreamingGenerator",
    "build_sampler",
    "chance_predictions",
    "check_generation_options",
    "check_history",
    "generate_clips",
    "generate_dataset",
    "generate_split",
    "guided_x0",
    "load_evaluation_set",
    "plot_reactions",
    "read_history",
    "save_predictions",
    "with_listener_history",
]
