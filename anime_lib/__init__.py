"""anime_lib: the small shared library behind the human <-> anime face translation course.

Organised by concern: ``config`` (profiles, parameters), ``data`` (ToyFaces, real datasets,
downloads, preprocessing), ``metrics`` (probe and scores), ``training`` (loops, checkpoints),
``viz`` (figures), ``widgets`` (explorers), ``course`` / ``sweep`` (runners).
Nothing here downloads anything at import time.
"""
__version__ = "0.1.0"

from anime_lib.config import REPO_URL, resolve_params, resolve_profile, seed_everything  # noqa: F401
