"""Custom actions loaded by the rasa_sdk action server (`rasa run actions`).

Thin glue: each module reads the tracker and calls into ``bot/``. rasa_sdk imports
every submodule of this package, so adding a module needs no registry.
"""
