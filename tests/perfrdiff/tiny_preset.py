"""Facts of the ``tiny`` preset that several test modules build inputs from."""

from perfrdiff.config import load_config
from perfrdiff.features import history_dim

#: Channels of a listener history under the preset's ``style.input``.
HISTORY_DIM = history_dim(load_config("tiny").style.input)
