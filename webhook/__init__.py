"""multinode-webhook: makes InferenceService args reach KServe multi-node predictors."""

__version__ = "0.1.0"
