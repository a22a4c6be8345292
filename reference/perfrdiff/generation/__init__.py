"""Generation of listener reactions: online DDIM sampling, whole splits, baselines, plots.

Inference only: nothing here imports :mod:`perfrdiff.training`. Trained models come from a
:class:`perfrdiff.Run`.
"""

import perfrdiff._guard  # noqa: F401  (names the extra to install when it is missing)
from perfrdiff.generation.inputs import check_generation_options, check_history, read_history
from perfrdiff.generation.plots import plot_reactions
from perfrdiff.generation.reactions import (
    MODES,
    EvaluationSet,
    chance_predictions,
    check_history_frames,
    load_evaluation_set,
    save_predictions,
    with_listener_history,
    with_style_input,
    write_generation,
)
from perfrdiff.generation.sampler import (
    ReactionSampler,
    SamplerConfig,
    continue_from,
    guided_x0,
)
from perfrdiff.generation.streaming import (
    StreamingGenerator,
    batch_count,
    generate_batches,
    generate_clips,
    generate_dataset,
)

__all__ = [
    "MODES",
    "EvaluationSet",
    "ReactionSampler",
    "SamplerConfig",
    "StreamingGenerator",
    "batch_count",
    "chance_predictions",
    "check_generation_options",
    "check_history",
    "check_history_frames",
    "continue_from",
    "generate_batches",
    "generate_clips",
    "generate_dataset",
    "guided_x0",
    "load_evaluation_set",
    "plot_reactions",
    "read_history",
    "save_predictions",
    "with_listener_history",
    "with_style_input",
    "write_generation",
]
