"""What tests, benchmarks and demos run on instead of a downloaded model.

- :mod:`.tiny_models`: tiny random-weight VLMs of every supported family, built from their
  transformers config classes, with a toy processor each;
- :mod:`.builtins`: their ``--model tiny-<family>`` names (a ``fastctrl.builtins`` entry
  point, :mod:`fastctrl.runtime.registry`).

Nothing here is imported by the serving code; the tiny models are imported only when one is
asked for (they import transformers' model classes: seconds).
"""
