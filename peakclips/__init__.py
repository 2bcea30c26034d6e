"""PeakClips: query-conditioned video highlights (a K-frames data engine) and a keyframe-selector trainer.

Importing the package is cheap on purpose: Ray, torch, open_clip, scenedetect and openai are
imported only inside the modules that use them.
"""

__version__ = "0.1.0"
