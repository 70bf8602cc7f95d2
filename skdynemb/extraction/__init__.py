"""Extraction: structures -> per-element rows of a pretrained backbone's hidden stages.

:class:`Extractor` is the one engine behind every entry point that runs a backbone
(:class:`~skdynemb.DynamicEmbeddingTransformer`, the matminer
:class:`~skdynemb.featurizers.DynamicEmbeddingFeaturizer`, :func:`skdynemb.streaming.extract_to_file`
and ``skdynemb extract``), and the extension point for new ones: build an ``Extractor`` and call
:meth:`Extractor.extract`. One sample goes through it as

``sample -> read (parse, validate) -> cell -> checks (elements, geometry) -> cache look-up ->
batch -> backbone forward -> pooling by element -> cache write -> selected stages (+ compound features)``.

Modules: :mod:`skdynemb.extraction.engine` (:class:`Extractor`, :func:`resolve_stages`) and
:mod:`skdynemb.extraction.batches` (the batched forward passes, with failures attributed to
structures: :func:`extract_pooled_or_errors`, :func:`check_sample`, :func:`is_sample_fault`).
Names are imported on first use, so that reading :data:`DEFAULT_BACKBONE` (the command line's
``--help``) does not load torch.
"""

from importlib import import_module

#: The backbone every entry point uses when none is named: the official ALIGNN-FF
#: (``"alignn-ff-wt10"``), best downstream on the paper harness's Table 2 at CPU settings.
DEFAULT_BACKBONE = "alignn-ff"

_EXPORTS = {
    "Extractor": "skdynemb.extraction.engine",
    "resolve_stages": "skdynemb.extraction.engine",
    "COMPOUND_FEATURES": "skdynemb.extraction.engine",
    "SampleError": "skdynemb.extraction.batches",
    "check_elements": "skdynemb.extraction.batches",
    "check_sample": "skdynemb.extraction.batches",
    "extract_pooled_or_errors": "skdynemb.extraction.batches",
    "is_sample_fault": "skdynemb.extraction.batches",
}

__all__ = ["DEFAULT_BACKBONE", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
