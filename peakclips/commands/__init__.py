"""The library side of three `peakclips` subcommands whose natural module names are taken: by a
pipeline stage (`frames`, `scenes`: peakclips/stages/) or by the standard library (`select`).

    commands/frames.py   peakclips frames    any-k frames of one query of a built dataset
    commands/scenes.py   peakclips scenes    stages 1-3 on one local video
    commands/select.py   peakclips select    a trained selector on one video

Like every command's library module (verify, stats, export, report, hub, annotator_eval,
calibrate) they return values and raise typed errors (peakclips/errors.py); only peakclips/cli.py
prints and chooses the exit code.
"""
