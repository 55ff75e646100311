"""TrustformeRS: Hugging Face transformers' and sentence-transformers' Python API on a Rust
engine. Load checkpoints as the Hub ships them (safetensors, sharded or not, or one GGUF
file) and run them with transformers' numbers, numpy in and out, no torch needed::

    from trustformers import AutoTokenizer, AutoModelForCausalLM, pipeline

    chat = pipeline("text-generation", model="smollm2-135m-instruct")
    chat([{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=20)

Every call into the engine releases the GIL, so threads run in parallel; errors are
:class:`TrustformersError` subclasses of the fitting builtin (``ValueError``, ``OSError``,
``FileNotFoundError``).
"""

from ._trustformers import DEFAULT_MODEL, __version__
from .exceptions import CheckpointError, FileNotFound, InvalidArgument, TrustformersError
from .generation import (
    BaseStreamer,
    GenerationConfig,
    TextIteratorStreamer,
    TextStreamer,
    set_seed,
)
from .modeling import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    ModelOutput,
    PretrainedConfig,
    PreTrainedModel,
)
from .pipelines import Pipeline, pipeline
from .sentence_transformers import SentenceTransformer
from .tokenization import AutoTokenizer, BatchEncoding, PreTrainedTokenizer
from .vision import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForImageTextToText,
    AutoModelForVision2Seq,
    AutoModelForZeroShotImageClassification,
    AutoProcessor,
)

__all__ = [
    "__version__",
    "DEFAULT_MODEL",
    "AutoTokenizer",
    "PreTrainedTokenizer",
    "BatchEncoding",
    "AutoConfig",
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForMaskedLM",
    "AutoModelForMultipleChoice",
    "AutoModelForQuestionAnswering",
    "AutoModelForSeq2SeqLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "AutoImageProcessor",
    "AutoModelForImageClassification",
    "AutoModelForZeroShotImageClassification",
    "AutoModelForImageTextToText",
    "AutoModelForVision2Seq",
    "AutoProcessor",
    "PreTrainedModel",
    "PretrainedConfig",
    "ModelOutput",
    "GenerationConfig",
    "BaseStreamer",
    "TextStreamer",
    "TextIteratorStreamer",
    "set_seed",
    "pipeline",
    "Pipeline",
    "SentenceTransformer",
    "TrustformersError",
    "InvalidArgument",
    "CheckpointError",
    "FileNotFound",
]
