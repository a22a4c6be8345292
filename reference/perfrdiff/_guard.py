"""Imported first by each perfrdiff subpackage: raises
:class:`~perfrdiff._extra.MissingExtraError` (naming ``pip install 'weditlib[reference]'``) when the
``[reference]`` extra is missing, before any of its modules is imported."""

from perfrdiff._extra import require_reference_extra

require_reference_extra()
