"""Assemble the all-MiniLM-L6-v2 ONNX graph directly from its safetensors weights.

No PyTorch export: the graph is written node by node with :mod:`onnx.helper`. It is shaped
like a Hugging Face BERT export on purpose (``MatMul → Add → Reshape → Transpose`` projections,
``Div`` scaling, an additive ``Mul(Sub(1, mask))`` attention mask, ``Add → LayerNormalization``
residuals and the ``erf`` GELU) because those are the patterns ONNX Runtime's transformer
optimizer recognizes and fuses into ``Attention``, ``SkipLayerNormalization`` and ``BiasGelu``.

Inputs: ``input_ids`` and ``attention_mask`` (int64, ``[batch, sequence]``). Token type ids are
always 0 for single sentences, so that embedding row is folded in as a constant. Output:
``sentence_embedding`` (float32, ``[batch, hidden]``): mean pooling over the attention mask,
then L2 normalization, exactly as sentence-transformers' ``Pooling`` + ``Normalize`` modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.errors import ModelBuildError
from models.weights import BertConfig

OPSET = 17  # LayerNormalization is a standard op from 17 on
IR_VERSION = 8
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
SENTENCE_EMBEDDING = "sentence_embedding"

# BERT's additive mask value; the fused Attention op uses the same constant by default.
MASK_FILTER_VALUE = -10000.0


@dataclass
class _GraphAssembler:
    """Accumulates nodes and initializers, handing out unique tensor names."""

    compute_dtype: type[np.floating] = np.float32
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _constants: dict[tuple[str, bytes], str] = field(default_factory=dict)
    _counter: int = 0

    def node(self, op_type: str, inputs: list[str], prefix: str, **attributes: Any) -> str:
        """Append one node named after its block (``prefix``); return its output tensor name."""
        self._counter += 1
        output = f"{prefix}/{op_type}_{self._counter}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    @property
    def onnx_float(self) -> int:
        return helper.np_dtype_to_tensor_dtype(np.dtype(self.compute_dtype))

    def weight(self, name: str, array: np.ndarray) -> str:
        """Add a weight, stored in the compute dtype when it is floating point."""
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(self.compute_dtype)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def constant(self, array: np.ndarray, *, keep_dtype: bool = False) -> str:
        """Add (or reuse) a small constant; floats follow the compute dtype unless ``keep_dtype``."""
        if not keep_dtype and np.issubdtype(array.dtype, np.floating):
            array = array.astype(self.compute_dtype)
        key = (str(array.dtype) + str(array.shape), array.tobytes())
        if key not in self._constants:
            name = f"const_{len(self._constants)}"
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
            self._constants[key] = name
        return self._constants[key]


def build_bert_sentence_graph(
    config: BertConfig,
    weights: dict[str, np.ndarray],
    *,
    compute_dtype: type[np.floating] = np.float32,
) -> onnx.ModelProto:
    """Build the sentence-embedding graph of a BERT encoder with mean pooling and L2 norm.

    ``compute_dtype`` float16 stores weights and runs the encoder in half precision (for GPUs);
    pooling and normalization always run in float32, and the output is float32 either way.

    1. Embeddings: word + position + token type 0, then LayerNorm.
    2. The additive attention mask, built once from ``attention_mask`` and shared by every layer.
    3. ``num_hidden_layers`` encoder layers (self-attention, then the GELU feed-forward).
    4. Mean pooling over the attention mask and L2 normalization.
    """
    graph = _GraphAssembler(compute_dtype=compute_dtype)
    try:
        # 1. Embeddings
        hidden = _embeddings(graph, config, weights)
        # 2. Attention mask
        additive_mask = _additive_attention_mask(graph)
        # 3. Encoder layers
        for layer in range(config.num_hidden_layers):
            hidden = _encoder_layer(graph, config, weights, layer, hidden, additive_mask)
        # 4. Pooling and normalization, in float32: a sum over up to 256 tokens needs the range.
        if compute_dtype != np.float32:
            hidden = graph.node("Cast", [hidden], "pooling", to=TensorProto.FLOAT)
        embedding = _mean_pool_and_normalize(graph, hidden)
    except KeyError as error:
        raise ModelBuildError(f"the weights file has no tensor {error}; is it a BERT model?") from None

    graph.nodes.append(helper.make_node("Identity", [embedding], [SENTENCE_EMBEDDING], name="output"))
    onnx_graph = helper.make_graph(
        graph.nodes,
        "bert_sentence_embedding",
        inputs=[
            helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(ATTENTION_MASK, TensorProto.INT64, ["batch", "sequence"]),
        ],
        outputs=[
            helper.make_tensor_value_info(
                SENTENCE_EMBEDDING, TensorProto.FLOAT, ["batch", config.hidden_size]
            )
        ],
        initializer=graph.initializers,
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="tidewire.models.graph_builder",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _linear(graph: _GraphAssembler, weights: dict[str, np.ndarray], prefix: str, x: str) -> str:
    # PyTorch stores Linear weights as [out, in]; MatMul wants [in, out].
    weight = graph.weight(f"{prefix}.weight", weights[f"{prefix}.weight"].T)
    bias = graph.weight(f"{prefix}.bias", weights[f"{prefix}.bias"])
    return graph.node("Add", [graph.node("MatMul", [x, weight], prefix), bias], prefix)


def _layer_norm(
    graph: _GraphAssembler, config: BertConfig, weights: dict[str, np.ndarray], prefix: str, x: str
) -> str:
    scale = graph.weight(f"{prefix}.weight", weights[f"{prefix}.weight"])
    bias = graph.weight(f"{prefix}.bias", weights[f"{prefix}.bias"])
    return graph.node("LayerNormalization", [x, scale, bias], prefix, axis=-1, epsilon=config.layer_norm_eps)


def _embeddings(graph: _GraphAssembler, config: BertConfig, weights: dict[str, np.ndarray]) -> str:
    prefix = "embeddings"
    word_table = graph.weight(
        "embeddings.word_embeddings.weight", weights["embeddings.word_embeddings.weight"]
    )
    words = graph.node("Gather", [word_table, INPUT_IDS], prefix, axis=0)

    # Positions 0..sequence-1: slice the first `sequence` rows of the position table.
    position_table = graph.weight(
        "embeddings.position_embeddings.weight", weights["embeddings.position_embeddings.weight"]
    )
    shape = graph.node("Shape", [INPUT_IDS], prefix)
    sequence_length = graph.node(
        "Slice",
        [shape, graph.constant(np.array([1], np.int64)), graph.constant(np.array([2], np.int64))],
        prefix,
    )
    positions = graph.node(
        "Slice",
        [
            position_table,
            graph.constant(np.array([0], np.int64)),
            sequence_length,
            graph.constant(np.array([0], np.int64)),
        ],
        prefix,
    )
    token_type_zero = graph.weight(
        "embeddings.token_type_embeddings.row0", weights["embeddings.token_type_embeddings.weight"][0]
    )
    summed = graph.node("Add", [graph.node("Add", [words, positions], prefix), token_type_zero], prefix)
    return _layer_norm(graph, config, weights, "embeddings.LayerNorm", summed)


def _additive_attention_mask(graph: _GraphAssembler) -> str:
    # [batch, seq] → [batch, 1, 1, seq]; (1 - mask) * -10000: 0 for tokens, -10000 for padding.
    prefix = "attention_mask"
    expanded = graph.node(
        "Unsqueeze",
        [
            graph.node("Unsqueeze", [ATTENTION_MASK, graph.constant(np.array([1], np.int64))], prefix),
            graph.constant(np.array([2], np.int64)),
        ],
        prefix,
    )
    as_float = graph.node("Cast", [expanded], prefix, to=graph.onnx_float)
    inverted = graph.node("Sub", [graph.constant(np.array(1.0, np.float32)), as_float], prefix)
    return graph.node("Mul", [inverted, graph.constant(np.array(MASK_FILTER_VALUE, np.float32))], prefix)


def _split_heads(graph: _GraphAssembler, config: BertConfig, x: str, prefix: str, perm: list[int]) -> str:
    heads_shape = graph.constant(np.array([0, 0, config.num_attention_heads, config.head_size], np.int64))
    return graph.node("Transpose", [graph.node("Reshape", [x, heads_shape], prefix)], prefix, perm=perm)


def _encoder_layer(
    graph: _GraphAssembler,
    config: BertConfig,
    weights: dict[str, np.ndarray],
    layer: int,
    hidden: str,
    additive_mask: str,
) -> str:
    prefix = f"encoder.layer.{layer}"
    attention = f"{prefix}.attention"

    # Self-attention. Keys are transposed to [batch, heads, head_size, seq] so Q·K is one MatMul.
    query = _split_heads(
        graph, config, _linear(graph, weights, f"{attention}.self.query", hidden), attention, [0, 2, 1, 3]
    )
    key = _split_heads(
        graph, config, _linear(graph, weights, f"{attention}.self.key", hidden), attention, [0, 2, 3, 1]
    )
    value = _split_heads(
        graph, config, _linear(graph, weights, f"{attention}.self.value", hidden), attention, [0, 2, 1, 3]
    )
    scores = graph.node(
        "Div",
        [
            graph.node("MatMul", [query, key], attention),
            graph.constant(np.array(math.sqrt(config.head_size), np.float32)),
        ],
        attention,
    )
    probabilities = graph.node(
        "Softmax", [graph.node("Add", [scores, additive_mask], attention)], attention, axis=-1
    )
    context = graph.node(
        "Reshape",
        [
            graph.node(
                "Transpose",
                [graph.node("MatMul", [probabilities, value], attention)],
                attention,
                perm=[0, 2, 1, 3],
            ),
            graph.constant(np.array([0, 0, config.hidden_size], np.int64)),
        ],
        attention,
    )
    attention_output = _linear(graph, weights, f"{attention}.output.dense", context)
    hidden = _layer_norm(
        graph,
        config,
        weights,
        f"{attention}.output.LayerNorm",
        graph.node("Add", [attention_output, hidden], attention),
    )

    # Feed-forward with the exact (erf) GELU: x * 0.5 * (1 + erf(x / sqrt(2))).
    ffn = f"{prefix}.ffn"
    intermediate = _linear(graph, weights, f"{prefix}.intermediate.dense", hidden)
    erf = graph.node(
        "Erf",
        [graph.node("Div", [intermediate, graph.constant(np.array(math.sqrt(2.0), np.float32))], ffn)],
        ffn,
    )
    one_plus = graph.node("Add", [erf, graph.constant(np.array(1.0, np.float32))], ffn)
    gelu = graph.node(
        "Mul",
        [graph.node("Mul", [intermediate, one_plus], ffn), graph.constant(np.array(0.5, np.float32))],
        ffn,
    )
    output = _linear(graph, weights, f"{prefix}.output.dense", gelu)
    return _layer_norm(
        graph, config, weights, f"{prefix}.output.LayerNorm", graph.node("Add", [output, hidden], ffn)
    )


def _mean_pool_and_normalize(graph: _GraphAssembler, hidden: str) -> str:
    prefix = "pooling"
    mask = graph.node("Cast", [ATTENTION_MASK], prefix, to=TensorProto.FLOAT)
    axis_1 = graph.constant(np.array([1], np.int64))
    masked = graph.node(
        "Mul",
        [hidden, graph.node("Unsqueeze", [mask, graph.constant(np.array([2], np.int64))], prefix)],
        prefix,
    )
    summed = graph.node("ReduceSum", [masked, axis_1], prefix, keepdims=0)
    # Clamp as sentence-transformers does, so an all-padding row cannot divide by zero.
    counts = graph.node(
        "Max",
        [
            graph.node("ReduceSum", [mask, axis_1], prefix, keepdims=1),
            graph.constant(np.array(1e-9, np.float32), keep_dtype=True),
        ],
        prefix,
    )
    pooled = graph.node("Div", [summed, counts], prefix)

    prefix = "normalize"
    squared_sum = graph.node(
        "ReduceSum", [graph.node("Mul", [pooled, pooled], prefix), axis_1], prefix, keepdims=1
    )
    norm = graph.node(
        "Max",
        [
            graph.node("Sqrt", [squared_sum], prefix),
            graph.constant(np.array(1e-12, np.float32), keep_dtype=True),
        ],
        prefix,
    )
    return graph.node("Div", [pooled, norm], prefix)
